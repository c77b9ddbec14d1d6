package clientstate_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/envelope"
)

func load(t *testing.T, s clientstate.Store, o clientstate.Options) *clientstate.State {
	t.Helper()
	st, err := clientstate.Load(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var g1 = protocol.GroupID{1}

// TestSendCountersNeverReused simulates a crash after every message: a
// state reloaded from the store always resumes above every counter handed
// out before, while the store is written once per Reserve messages.
func TestSendCountersNeverReused(t *testing.T) {
	store := &clientstate.MemStore{}
	const reserve = 8
	st := load(t, store, clientstate.Options{Reserve: reserve})
	var last uint64
	for i := 0; i < 100; i++ {
		c, err := st.NextCounter(g1)
		if err != nil {
			t.Fatal(err)
		}
		if c <= last {
			t.Fatalf("message %d got counter %d after %d", i, c, last)
		}
		last = c
		if i%7 == 3 { // crash and restart
			st = load(t, store, clientstate.Options{Reserve: reserve})
		}
	}
	if store.Saves > 100/reserve+100/7+2 {
		t.Fatalf("%d saves for 100 messages: block reservation is not working", store.Saves)
	}
}

func TestSendCounterNotHandedOutWhenSaveFails(t *testing.T) {
	store := &failingStore{}
	st := load(t, store, clientstate.Options{Reserve: 2})
	store.fail = true
	if _, err := st.NextCounter(g1); !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want the store's error", err)
	}
	store.fail = false
	c, err := st.NextCounter(g1)
	if err != nil || c != 1 {
		t.Fatalf("after recovery got counter %d, %v; want 1", c, err)
	}
}

var errDisk = errors.New("disk full")

type failingStore struct {
	clientstate.MemStore
	fail bool
}

func (f *failingStore) Save(b []byte) error {
	if f.fail {
		return errDisk
	}
	return f.MemStore.Save(b)
}

func header(sender byte, epoch protocol.Epoch, counter uint64) envelope.Header {
	return envelope.Header{Group: g1, Epoch: epoch, Sender: protocol.ClientID{sender}, Counter: counter}
}

func TestAcceptRefusesReplaysAcrossRestart(t *testing.T) {
	store := &clientstate.MemStore{}
	st := load(t, store, clientstate.Options{})
	key := [32]byte{7}
	if err := st.InstallKey(g1, 1, &key); err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint64{1, 2, 5} {
		if err := st.Accept(header(0xaa, 1, c)); err != nil {
			t.Fatalf("counter %d: %v", c, err)
		}
	}
	st = load(t, store, clientstate.Options{})
	for _, c := range []uint64{1, 5} {
		if err := st.Accept(header(0xaa, 1, c)); !errors.Is(err, protocol.ErrReplayedMessage) {
			t.Fatalf("replayed counter %d after restart: got %v", c, err)
		}
	}
	if err := st.Check(header(0xaa, 1, 6)); err != nil {
		t.Fatalf("counter 6: %v", err)
	}
	if err := st.Accept(header(0xbb, 1, 1)); err != nil {
		t.Fatalf("another sender's counter 1: %v", err)
	}
}

func TestDrainDropsOldEpochs(t *testing.T) {
	st := load(t, &clientstate.MemStore{}, clientstate.Options{})
	for e := protocol.Epoch(1); e <= 4; e++ {
		key := [32]byte{byte(e)}
		if err := st.InstallKey(g1, e, &key); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Accept(header(1, 4, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Key(g1, 2); !errors.Is(err, protocol.ErrRetiredEpoch) {
		t.Fatalf("epoch 2 after a message of epoch 4: got %v, want it dropped (retired)", err)
	}
	if _, err := st.Key(g1, 3); err != nil {
		t.Fatalf("previous epoch 3 must stay: %v", err)
	}
	if err := st.InstallKey(g1, 2, &[32]byte{2}); !errors.Is(err, protocol.ErrStaleEpoch) {
		t.Fatalf("re-installing drained epoch 2: got %v, want ErrStaleEpoch", err)
	}
	e, _, err := st.Current(g1)
	if err != nil || e != 4 {
		t.Fatalf("current epoch %d, %v", e, err)
	}
}

// TestSizeBudget: 8 groups of 16 members, two epoch keys each, large
// counters: the stored state stays well under 4 KiB.
func TestSizeBudget(t *testing.T) {
	st := load(t, &clientstate.MemStore{}, clientstate.Options{})
	for g := byte(0); g < 8; g++ {
		gid := protocol.GroupID{g}
		for e := protocol.Epoch(1000); e < 1002; e++ {
			if err := st.InstallKey(gid, e, &[32]byte{g, byte(e)}); err != nil {
				t.Fatal(err)
			}
		}
		for m := byte(0); m < 16; m++ {
			h := envelope.Header{Group: gid, Epoch: 1001, Sender: protocol.ClientID{m, g, 0xff}, Counter: 1_000_000 + uint64(m)}
			if err := st.Accept(h); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			st.NextCounter(gid)
		}
	}
	size := st.Size()
	t.Logf("8 groups x 16 members: %d bytes", size)
	if size > 3*1024 {
		t.Fatalf("state is %d bytes, want well under 4 KiB", size)
	}
	// Each sender's window with holes: 120 counters in, 8 of them never
	// arrived (lost, or still to come out of order), spread over it.
	for g := byte(0); g < 8; g++ {
		for m := byte(0); m < 16; m++ {
			for c := uint64(1_000_001); c <= 1_000_120; c++ {
				if c%15 == 7 {
					continue
				}
				h := envelope.Header{Group: protocol.GroupID{g}, Epoch: 1001, Sender: protocol.ClientID{m, g, 0xff}, Counter: c + uint64(m)}
				if err := st.Accept(h); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	size = st.Size()
	t.Logf("8 groups x 16 members, 8 holes in each sender's window: %d bytes", size)
	if size > 4*1024 {
		t.Fatalf("state with holes is %d bytes, want at most 4 KiB", size)
	}
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	fs := &clientstate.FileStore{Path: path}
	st := load(t, fs, clientstate.Options{})
	if err := st.InstallKey(g1, 1, &[32]byte{1}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	st = load(t, fs, clientstate.Options{})
	if _, err := st.Key(g1, 1); err != nil {
		t.Fatalf("key lost across reload: %v", err)
	}
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 1
	os.WriteFile(path, data, 0o600)
	if _, err := clientstate.Load(fs, clientstate.Options{}); !errors.Is(err, protocol.ErrStateCorrupt) {
		t.Fatalf("corrupt file: got %v, want ErrStateCorrupt", err)
	}
}

// TestOlderKeyWithFullRingRefused: with MaxEpochs keys kept, a bundle for
// an epoch older than all of them is refused, not silently dropped.
func TestOlderKeyWithFullRingRefused(t *testing.T) {
	st := load(t, &clientstate.MemStore{}, clientstate.Options{MaxEpochs: 2})
	for _, e := range []protocol.Epoch{5, 6} {
		if err := st.InstallKey(g1, e, &[32]byte{byte(e)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.InstallKey(g1, 3, &[32]byte{3}); !errors.Is(err, protocol.ErrStaleEpoch) {
		t.Fatalf("got %v, want ErrStaleEpoch", err)
	}
	if err := st.InstallKey(g1, 0, &[32]byte{}); !errors.Is(err, protocol.ErrBadEpoch) {
		t.Fatalf("epoch 0: got %v, want ErrBadEpoch", err)
	}
	if _, err := st.Key(g1, 5); err != nil {
		t.Fatalf("epoch 5 must stay: %v", err)
	}
}

// TestCounterBounds: a client refuses counter 2^64-1 and a counter more
// than MaxCounterJump above the last one accepted from the sender, so
// that one message (forged by whoever holds the group key) cannot make
// it refuse every later message of that sender; a jump of exactly the
// bound is accepted.
func TestCounterBounds(t *testing.T) {
	s, err := clientstate.Load(&clientstate.MemStore{}, clientstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, alice := protocol.GroupID{1}, protocol.ClientID{7}
	if err := s.InstallKey(g, 1, &[32]byte{1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		counter uint64
		want    error
	}{
		{1, nil},
		{protocol.ExhaustedCounter, protocol.ErrCounterExhausted},
		{2 + protocol.MaxCounterJump, protocol.ErrCounterJump},
		{1 + protocol.MaxCounterJump, nil},
		{1 + protocol.MaxCounterJump, protocol.ErrReplayedMessage},
	} {
		h := envelope.Header{Group: g, Epoch: 1, Sender: alice, Counter: c.counter}
		if err := s.Accept(h); !errors.Is(err, c.want) {
			t.Errorf("counter %d: %v, want %v", c.counter, err, c.want)
		}
	}
}

// TestRetireBySender: once a sender's message of a newer epoch is
// accepted, its messages of older epochs are refused, while the other
// senders' are still taken; the rule survives a restart.
func TestRetireBySender(t *testing.T) {
	store := &clientstate.MemStore{}
	st := load(t, store, clientstate.Options{})
	for e := protocol.Epoch(1); e <= 2; e++ {
		if err := st.InstallKey(g1, e, &[32]byte{byte(e)}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		h    envelope.Header
		want error
	}{
		{header(0xc0, 1, 1), nil},                      // carol, epoch 1
		{header(0xc0, 2, 2), nil},                      // carol moves to epoch 2
		{header(0xc0, 1, 3), protocol.ErrRetiredEpoch}, // carol in epoch 1 again: retired for her
		{header(0xb0, 1, 1), nil},                      // bob still in epoch 1: within the group's grace
	}
	for i, c := range steps {
		if err := st.Accept(c.h); !errors.Is(err, c.want) {
			t.Fatalf("step %d: %v, want %v", i, err, c.want)
		}
	}
	st = load(t, store, clientstate.Options{})
	if err := st.Check(header(0xc0, 1, 9)); !errors.Is(err, protocol.ErrRetiredEpoch) {
		t.Fatalf("after a restart: %v, want retired_epoch", err)
	}
}

// TestRetireAfterMessages: the previous epoch's key is dropped once
// RetireAfter messages were accepted from the first of the newer epoch
// on, previous-epoch ones included; before that it still opens.
func TestRetireAfterMessages(t *testing.T) {
	st := load(t, &clientstate.MemStore{}, clientstate.Options{})
	for e := protocol.Epoch(1); e <= 2; e++ {
		if err := st.InstallKey(g1, e, &[32]byte{byte(e)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Accept(header(0xaa, 2, 1)); err != nil { // the first of epoch 2: 1 counted
		t.Fatal(err)
	}
	if err := st.Accept(header(0xbb, 1, 1)); err != nil { // a late epoch-1 message: 2 counted
		t.Fatal(err)
	}
	for c := uint64(2); c < protocol.RetireAfter-1; c++ { // up to RetireAfter-1 counted
		if err := st.Accept(header(0xaa, 2, c)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Key(g1, 1); err != nil {
		t.Fatalf("epoch 1 retired early: %v", err)
	}
	if err := st.Accept(header(0xbb, 1, 2)); err != nil { // the RetireAfter-th message
		t.Fatalf("the last message of the grace: %v", err)
	}
	if _, err := st.Key(g1, 1); !errors.Is(err, protocol.ErrRetiredEpoch) {
		t.Fatalf("epoch 1 after %d messages: %v, want retired", protocol.RetireAfter, err)
	}
	if err := st.Check(header(0xdd, 1, 1)); !errors.Is(err, protocol.ErrRetiredEpoch) {
		t.Fatalf("a sender never seen, in epoch 1: %v, want retired", err)
	}
	if err := st.InstallKey(g1, 1, &[32]byte{1}); !errors.Is(err, protocol.ErrStaleEpoch) {
		t.Fatalf("re-installing a retired epoch: %v, want stale_epoch", err)
	}
}
