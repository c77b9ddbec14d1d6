package record_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

// FuzzDecode: Decode never panics; on failure it returns no event and an
// error wrapping ErrMalformed or ErrVersion; what it accepts encodes again
// to exactly the same body (the decoder accepts the encoder's output
// only), and that body decodes to the same event.
func FuzzDecode(f *testing.F) {
	for _, e := range samples() {
		rec := sign(f, e)
		f.Add([]byte(rec))
		f.Add([]byte(rec[:len(rec)-1]))
		f.Add(append(bytes.Clone(rec), 0))
		f.Add(with(rec, record.HeaderSize+protocol.GroupIDSize+4+protocol.HashSize, 0xff, 0xff, 0xff, 0xff))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := record.Record(data).Decode()
		if err != nil {
			if e != nil || !errors.Is(err, record.ErrMalformed) && !errors.Is(err, record.ErrVersion) {
				t.Fatalf("Decode(%x) = %v, %v: want no event and ErrMalformed or ErrVersion", data, e, err)
			}
			return
		}
		body, err := record.Encode(e)
		if err != nil {
			t.Fatalf("Decode(%x) accepted an event Encode refuses: %v", data, err)
		}
		if !bytes.Equal(body, data[:len(data)-protocol.SignatureSize]) {
			t.Fatalf("Decode(%x) accepted a body that encodes again as %x", data, body)
		}
		again, err := record.Record(append(body, data[len(body):]...)).Decode()
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("decode(encode(decode(%x))) = %+v, %v; want %+v", data, again, err, e)
		}
		_ = e.Aggregate()
	})
}
