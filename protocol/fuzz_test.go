package protocol_test

import (
	"strings"
	"testing"

	"github.com/commsec/communicator/protocol"
)

// FuzzParseID checks the hex parsers of client and group ids: they return
// the zero id on failure, and String gives back what they accepted (up to
// the case of the hex digits, which hex decoding does not mind).
func FuzzParseID(f *testing.F) {
	f.Add(protocol.ClientID{0xab, 31: 0xcd}.String())
	f.Add(protocol.GroupID{0x01, 15: 0xef}.String())
	f.Add(strings.ToUpper(protocol.GroupID{0xab}.String()))
	f.Add(strings.Repeat("0", 63) + "g")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := protocol.ParseClientID(s); err != nil {
			if id != (protocol.ClientID{}) {
				t.Fatalf("ParseClientID(%q) failed (%v) but returned %v", s, err, id)
			}
		} else if !strings.EqualFold(id.String(), s) {
			t.Fatalf("ParseClientID(%q) = %v", s, id)
		}
		if g, err := protocol.ParseGroupID(s); err != nil {
			if g != (protocol.GroupID{}) {
				t.Fatalf("ParseGroupID(%q) failed (%v) but returned %v", s, err, g)
			}
		} else if !strings.EqualFold(g.String(), s) {
			t.Fatalf("ParseGroupID(%q) = %v", s, g)
		}
	})
}
