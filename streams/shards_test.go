package streams

import (
	"testing"

	"github.com/commsec/communicator/protocol"
)

func TestShardSubjectsRoundTrip(t *testing.T) {
	var g protocol.GroupID
	var s protocol.ClientID
	s[0] = 7
	for _, k := range []Shards{1, 2, 4, 8, 16} {
		if err := k.Valid(); err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for b := range 64 {
			g[3] = byte(b)
			subject := k.Subject(g, s)
			shard, pg, ps, ok := ParseShardSubject(subject)
			if !ok || pg != g || ps != s || shard != k.Of(g) {
				t.Fatalf("K=%d %s: %d %v %v %v", k, subject, shard, pg, ps, ok)
			}
			seen[shard] = true
		}
		if len(seen) != int(k) {
			t.Fatalf("K=%d: groups reach %d shards", k, len(seen))
		}
	}
	for _, bad := range []Shards{0, 3, 5, 32, -1} {
		if bad.Valid() == nil {
			t.Fatalf("K=%d accepted", bad)
		}
	}
	for _, bad := range []string{"$KV.COMM_ACCEPTED_0.a.b", "$KV.COMM_ACCEPTED_01." + AcceptedKey(g, s), "$KV.COMM_ACCEPTED_16." + AcceptedKey(g, s), "$KV.COMM_ACCEPTEDX." + AcceptedKey(g, s)} {
		if _, _, _, ok := ParseShardSubject(bad); ok {
			t.Fatalf("%s parsed", bad)
		}
	}
}
