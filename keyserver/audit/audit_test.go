package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/keyserver/audit"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

type world struct {
	nc *nats.Conn
	js jetstream.JetStream
	ks *keys.SigningKey
	k  *keyserver.Keyserver
}

// history builds: alice, bob, carol join ops; carol leaves; a drill rekey.
func history(t *testing.T) *world {
	_, nc := natstest.Open(t)
	js, _ := jetstream.New(nc)
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	ctx, a := t.Context(), keyserver.Actor{Key: [32]byte{0xaa}}
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		id, _ := keys.GenerateClientIdentity(nil)
		if err := k.RegisterClient(ctx, a, id.Public(), n); err != nil {
			t.Fatal(err)
		}
	}
	k.CreateGroup(ctx, a, "ops", record.Policy{})
	k.CreateGroup(ctx, a, "other", record.Policy{})
	must(t, second(k.AddMembers(ctx, a, "ops", []string{"alice", "bob", "carol"})))
	must(t, second(k.AddMembers(ctx, a, "other", []string{"dave"})))
	must(t, second(k.RemoveMembers(ctx, a, "ops", []string{"carol"}, "left the team")))
	must(t, second(k.Rekey(ctx, keyserver.Actor{}, "ops", "drill")))
	return &world{nc: nc, js: js, ks: ks, k: k}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestTimeline(t *testing.T) {
	w := history(t)
	var calls int
	r, err := audit.Run(t.Context(), w.js, w.ks.Public(), "ops", func(done, total uint64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
	if len(r.Epochs) != 3 || r.Verified.GroupEvents != 4 {
		t.Fatalf("%d epochs from %d events, want 3 from 4", len(r.Epochs), r.Verified.GroupEvents)
	}
	want := [][]string{{"alice", "bob", "carol"}, {"alice", "bob"}, {"alice", "bob"}}
	for i, e := range r.Epochs {
		if strings.Join(e.Members, ",") != strings.Join(want[i], ",") {
			t.Errorf("epoch %d members %v, want %v", e.Number, e.Members, want[i])
		}
	}
	if r.Epochs[1].Reason != "left the team" || !strings.HasPrefix(r.Epochs[1].By, "operator aa") || r.Epochs[2].By != "keyserver" {
		t.Errorf("causes: %+v", r.Epochs)
	}
	for _, m := range r.Members {
		if m.Name == "carol" && (m.Spans[0].To == nil || m.Spans[0].ToEpoch != 1) {
			t.Errorf("carol's span %+v, want epochs 1-1 and an end", m.Spans[0])
		}
	}
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("\n%s", text.String())
	for _, s := range []string{"Group ops", `members_removed: carol ("left the team")`, "alice", "epochs 1–1"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q", s)
		}
	}
}

// TestTamperedLogFlagged: an event of the group, modified and re-published
// to its subject, makes the audit fail and name that event; the report
// says so first, claims no verification, and its page shows the break and
// marks the change made after it.
func TestTamperedLogFlagged(t *testing.T) {
	w := history(t)
	r, err := audit.Run(t.Context(), w.js, w.ks.Public(), "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := w.js.Stream(t.Context(), streams.Events)
	subject := streams.EventPrefix + "group." + r.Group
	last, err := stream.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(last.Data, []byte("drill"), []byte("DRILL"), 1)
	ack, err := jsPublish(w, subject, forged)
	if err != nil {
		t.Fatal(err)
	}
	must(t, second(w.k.Rekey(t.Context(), keyserver.Actor{}, "ops", "after the forgery")))
	r, err = audit.Run(t.Context(), w.js, w.ks.Public(), r.Group, nil)
	var be *audit.BrokenError
	if !errors.As(err, &be) || be.StreamSeq != ack {
		t.Fatalf("got %v, want a BrokenError at event %d", err, ack)
	}
	t.Log(err)
	if r == nil || r.Broken == nil || r.Broken.StreamSeq != ack || !strings.Contains(r.Broken.Reason, "signature") {
		t.Fatalf("report of the broken log: %+v", r)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("\n%s", text.String())
	if !strings.HasPrefix(text.String(), fmt.Sprintf("VERIFICATION FAILED: first broken event %d on %s", ack, subject)) {
		t.Error("the text does not say first that verification failed")
	}
	if strings.Contains(text.String(), "Verified:") || !strings.Contains(text.String(), "NOT VERIFIED: the log is broken at event") {
		t.Error("the text claims what a broken log cannot give")
	}
	var page bytes.Buffer
	must(t, r.WriteHTML(&page))
	for _, want := range []string{"<strong>VERIFICATION FAILED</strong>: the log is broken at event " + fmt.Sprint(ack),
		"Timeline (NOT VERIFIED)", `class="unverified"`, ">NOT VERIFIED</text>", `<tr class="after"`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page.String(), "Verified: ") {
		t.Error("the page of a broken log says Verified")
	}
}

// TestWrongKey: a key under which nothing in the log verifies is named as
// such, whether the group is asked for by name or by id; a tampered
// log is still told apart from it.
func TestWrongKey(t *testing.T) {
	w := history(t)
	r, err := audit.Run(t.Context(), w.js, w.ks.Public(), "ops", nil)
	must(t, err)
	other, _ := keys.GenerateSigningKey(nil)
	for _, ref := range []string{"ops", r.Group} {
		_, err := audit.Run(t.Context(), w.js, other.Public(), ref, nil)
		var wk *audit.WrongKeyError
		if !errors.As(err, &wk) || wk.Groups != 2 || errors.Is(err, audit.ErrNoGroup) {
			t.Errorf("%s under another key: %v, want a WrongKeyError for 2 groups", ref, err)
		}
		if err != nil && !strings.Contains(err.Error(), "does not verify under keyserver key") {
			t.Errorf("message %q", err)
		}
	}
}

func TestTruncatedEventFlagged(t *testing.T) {
	w := history(t)
	stream, _ := w.js.Stream(t.Context(), streams.Events)
	last, _ := stream.GetLastMsgForSubject(t.Context(), streams.EventPrefix+"group.*")
	ack, err := jsPublish(w, last.Subject, last.Data[:len(last.Data)/2])
	if err != nil {
		t.Fatal(err)
	}
	_, err = audit.Run(t.Context(), w.js, w.ks.Public(), "ops", nil)
	var be *audit.BrokenError
	if !errors.As(err, &be) || be.StreamSeq != ack {
		t.Fatalf("got %v, want a BrokenError at event %d", err, ack)
	}
}

func TestUnknownGroup(t *testing.T) {
	w := history(t)
	if _, err := audit.Run(t.Context(), w.js, w.ks.Public(), "nope", nil); !errors.Is(err, audit.ErrNoGroup) {
		t.Fatalf("got %v", err)
	}
}

func jsPublish(w *world, subject string, data []byte) (uint64, error) {
	ack, err := w.js.Publish(contextBG, subject, data)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

var contextBG = context.Background()
