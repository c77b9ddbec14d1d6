package protocol_test

import (
	"strings"
	"testing"

	"github.com/commsec/communicator/protocol"
)

// TestLabelsPrefixFree: no label is a prefix of another, so no input
// built for one purpose can be read as an input for another.
func TestLabelsPrefixFree(t *testing.T) {
	labels := []string{protocol.LabelServerSig, protocol.LabelClientSig, protocol.LabelKeyC2S, protocol.LabelKeyS2C,
		protocol.LabelBundleSig, protocol.LabelBundleWrap, protocol.LabelMemberDigest, protocol.LabelEvent,
		protocol.LabelAdmin, protocol.LabelCheckpoint, protocol.LabelEscrowKey, protocol.LabelEnvelopeSig}
	for i, a := range labels {
		for j, b := range labels {
			if i != j && strings.HasPrefix(b, a) {
				t.Errorf("%q is a prefix of %q", a, b)
			}
		}
	}
}
