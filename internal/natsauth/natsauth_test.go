package natsauth_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

var (
	g       = protocol.GroupID{0xab}
	k       = streams.Shards(streams.MaxShards)
	last    = streams.MaxShards - 1                 // the last shard's index
	gLast   = protocol.GroupID{0, 0, 0, byte(last)} // a group on the last shard of K = MaxShards
	alice   = protocol.ClientID{0xa1}
	ordered = "OC_abc" // an ordered consumer's name
)

// api is a JetStream API subject.
func api(s string) string { return "$JS.API." + s }

// reads are the API subjects a reader of stream uses: its info, gets,
// ordered consumers (create with a filter, next, info, delete).
func reads(stream, filter string) []string {
	return []string{api("STREAM.INFO." + stream), api("STREAM.MSG.GET." + stream), api("DIRECT.GET." + stream),
		api("CONSUMER.CREATE." + stream + "." + ordered + "." + filter), api("CONSUMER.CREATE." + stream + "." + ordered),
		api("CONSUMER.MSG.NEXT." + stream + "." + ordered), api("CONSUMER.INFO." + stream + "." + ordered),
		api("CONSUMER.DELETE." + stream + "." + ordered)}
}

func kvGet(bucket, key string) string {
	return api("DIRECT.GET." + streams.KVStream(bucket) + "." + streams.KVPrefix(bucket) + key)
}

func manage(stream string) []string {
	return []string{api("STREAM.CREATE." + stream), api("STREAM.UPDATE." + stream), api("STREAM.INFO." + stream),
		api("STREAM.LEADER.STEPDOWN." + stream)}
}

// change is what manage has beyond reads.
func change(stream string) []string {
	return slices.DeleteFunc(manage(stream), func(s string) bool { return s == api("STREAM.INFO."+stream) })
}

// used lists, per role, subjects its code publishes to.
func used() map[natsauth.Role][]string {
	ks := []string{streams.EventSubject(record.GroupAggregate(g)), streams.CheckpointSubject, streams.BundleSubject(g, alice),
		streams.AdminRequestSubject("00ff"), streams.KVPrefix(streams.KeyserverKV) + "epoch." + g.String(), api("INFO")}
	for _, s := range []string{streams.Events, streams.Checkpoints, streams.Bundles, streams.AdminRequests, streams.AcceptedStream,
		streams.AcceptedShard(last), streams.KVStream(streams.Relays), streams.KVStream(streams.Cursors), streams.KVStream(streams.KeyserverKV)} {
		ks = append(ks, manage(s)...)
	}
	ks = append(ks, reads(streams.Events, streams.AllEvents)...)
	ks = append(ks, reads(streams.AcceptedStream, streams.AllAccepted)...)
	ks = append(ks, reads(k.Stream(gLast), k.GroupFilter(gLast))...)
	ks = append(ks, reads(streams.KVStream(streams.KeyserverKV), ">")...)
	ks = append(ks, "$JS.FC."+streams.KVStream(streams.KeyserverKV)+".c.x")

	relay := []string{streams.AcceptedSubject(g, alice), streams.KVPrefix(streams.Relays) + "part.7", streams.KVPrefix(streams.Relays) + "member.r1",
		api("STREAM.PURGE." + streams.AcceptedStream), kvGet(streams.Accepted, streams.AcceptedKey(g, alice)),
		k.Subject(gLast, alice), api("STREAM.PURGE." + k.Stream(gLast)),
		kvGet(streams.Relays, "part.7"), "$JS.FC." + streams.KVStream(streams.Relays) + ".c.x"}
	relay = append(relay, reads(streams.Events, streams.AllEvents)...)
	relay = append(relay, reads(streams.Checkpoints, streams.CheckpointSubject)...)
	relay = append(relay, reads(streams.AcceptedStream, streams.AcceptedSubject(g, alice))...)
	relay = append(relay, reads(k.Stream(gLast), k.Subject(gLast, alice))...)
	relay = append(relay, reads(streams.KVStream(streams.Relays), ">")...)

	gw := []string{streams.PartitionSubject(63), streams.InboundSubject(g), streams.KVPrefix(streams.Cursors) + alice.String(),
		kvGet(streams.Cursors, alice.String())}
	gw = append(gw, reads(streams.Events, streams.AllEvents)...)
	gw = append(gw, reads(streams.Checkpoints, streams.CheckpointSubject)...)
	gw = append(gw, reads(streams.Bundles, streams.AllBundles)...)
	gw = append(gw, reads(streams.AcceptedStream, streams.AllAccepted)...)
	gw = append(gw, reads(k.Stream(gLast), k.GroupFilter(gLast))...)
	gw = append(gw, reads(streams.KVStream(streams.Cursors), ">")...)

	aud := append(reads(streams.Events, streams.AllEvents), reads(streams.Checkpoints, streams.CheckpointSubject)...)
	return map[natsauth.Role][]string{
		natsauth.Keyserver: ks, natsauth.Relay: relay, natsauth.Gateway: gw,
		natsauth.Admin:   {streams.AdminSubject("group.add"), streams.AdminSubject("list")},
		natsauth.Auditor: aud,
	}
}

// forbidden lists, per role, subjects it must not publish to.
func forbidden() map[natsauth.Role][]string {
	destroy := func(stream string) []string {
		return []string{api("STREAM.DELETE." + stream), api("STREAM.PURGE." + stream), api("STREAM.MSG.DELETE." + stream)}
	}
	var everyDestroy []string
	for _, st := range natsauth.Stores() {
		if !strings.HasPrefix(st.Stream, streams.AcceptedStream) {
			everyDestroy = append(everyDestroy, destroy(st.Stream)...)
		}
	}
	writesOf := map[string]string{
		"events": streams.EventSubject("group.x"), "checkpoints": streams.CheckpointSubject, "bundles": streams.BundleSubject(g, alice),
		"requests": streams.AdminRequestSubject("00"), "accepted": streams.AcceptedSubject(g, alice), "accepted-last": k.Subject(gLast, alice),
		"relays": streams.KVPrefix(streams.Relays) + "part.1", "cursors": streams.KVPrefix(streams.Cursors) + "x",
		"kskv": streams.KVPrefix(streams.KeyserverKV) + "x",
	}
	except := func(allowed ...string) []string {
		var out []string
		for k, s := range writesOf {
			if !slices.Contains(allowed, k) {
				out = append(out, s)
			}
		}
		return out
	}
	common := append(slices.Clone(everyDestroy), api("STREAM.CREATE.X"), api("STREAM.LIST"), api("ACCOUNT.PURGE.X"), api("META.LEADER.STEPDOWN"),
		"$JS.ACK.COMM_EVENTS.c.1.1.1.1.1", "_R_.abc.def", "$SYS.REQ.SERVER.PING")
	return map[natsauth.Role][]string{
		natsauth.Keyserver: slices.Concat(common, []string{writesOf["accepted"], writesOf["accepted-last"], writesOf["relays"], writesOf["cursors"],
			api("STREAM.PURGE." + streams.AcceptedStream), api("STREAM.PURGE." + k.Stream(gLast)), streams.PartitionSubject(1)}),
		natsauth.Relay: slices.Concat(common, except("accepted", "accepted-last", "relays"), change(streams.AcceptedStream),
			change(k.Stream(gLast))),
		natsauth.Gateway: slices.Concat(common, except("cursors"), change(k.Stream(gLast)), []string{api("STREAM.PURGE." + streams.AcceptedStream),
			api("STREAM.PURGE." + k.Stream(gLast)),
			api("STREAM.UPDATE." + streams.KVStream(streams.Cursors)), streams.AdminSubject("list")}),
		natsauth.Admin: slices.Concat(common, except(), reads(streams.Events, streams.AllEvents)),
		natsauth.Auditor: slices.Concat(common, except(), reads(streams.Bundles, streams.AllBundles),
			[]string{streams.PartitionSubject(1), streams.AdminSubject("list")}),
	}
}

func allows(patterns []string, subject string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return server.SubjectMatchesFilter(subject, p) })
}

// TestEveryUsedSubjectAllowed: every subject a role's code publishes to
// passes the role's permissions.
func TestEveryUsedSubjectAllowed(t *testing.T) {
	for role, subjects := range used() {
		p := natsauth.Of(role)
		for _, s := range subjects {
			if !allows(p.PubAllow, s) {
				t.Errorf("%s may not publish to %s, which it uses", role, s)
			}
		}
	}
}

// TestForbiddenSubjectsRefused: what a role must not write fails its
// permissions.
func TestForbiddenSubjectsRefused(t *testing.T) {
	for role, subjects := range forbidden() {
		p := natsauth.Of(role)
		for _, s := range subjects {
			if allows(p.PubAllow, s) {
				t.Errorf("%s may publish to %s", role, s)
			}
		}
	}
}

// TestSubscriptions: a role subscribes to its own inbox and the services
// it provides, nothing of another role's.
func TestSubscriptions(t *testing.T) {
	for _, r := range natsauth.Roles {
		p := natsauth.Of(r)
		if !allows(p.SubAllow, natsauth.InboxPrefix(r)+".x.y") {
			t.Errorf("%s cannot subscribe to its inbox", r)
		}
		for _, other := range natsauth.Roles {
			if other != r && allows(p.SubAllow, natsauth.InboxPrefix(other)+".x.y") {
				t.Errorf("%s may read %s's replies", r, other)
			}
		}
		provides := slices.ContainsFunc(natsauth.Services, func(s natsauth.Service) bool { return s.Provider == r })
		if p.AllowResponses != provides {
			t.Errorf("%s: allow_responses %v, provides a service %v", r, p.AllowResponses, provides)
		}
	}
	if !allows(natsauth.Of(natsauth.Relay).SubAllow, streams.PartitionSubject(3)) ||
		!allows(natsauth.Of(natsauth.Keyserver).SubAllow, streams.AdminSubject("list")) {
		t.Error("a service cannot subscribe to its requests")
	}
	if allows(natsauth.Of(natsauth.Gateway).SubAllow, streams.PartitionSubject(3)) {
		t.Error("a gateway may take the relays' requests")
	}
	live := []string{streams.LiveMsgPrefix + g.String() + "." + alice.String(), streams.LiveBundlePrefix + alice.String() + "." + g.String()}
	for _, r := range natsauth.Roles {
		for _, s := range live {
			if allows(natsauth.Of(r).SubAllow, s) != (r == natsauth.Gateway) {
				t.Errorf("%s: may subscribe to %s: %v", r, s, !(r == natsauth.Gateway))
			}
		}
	}
}

// TestStoresMatchStreams: the subjects natsauth gives each stream are the
// ones its configuration captures, so that an import covers every write.
func TestStoresMatchStreams(t *testing.T) {
	c := streams.Config{}
	configured := map[string][]string{
		streams.Events:                        events.StreamConfig(events.StoreConfig{}).Subjects,
		streams.Checkpoints:                   events.CheckpointConfig(events.StoreConfig{}).Subjects,
		streams.Bundles:                       streams.BundlesConfig(c).Subjects,
		streams.AdminRequests:                 streams.AdminRequestsConfig(c).Subjects,
		streams.AcceptedStream:                streams.AcceptedConfig(c, 1, 0).Subjects,
		streams.KVStream(streams.Relays):      {streams.KVPrefix(streams.Relays) + ">"},
		streams.KVStream(streams.Cursors):     {streams.KVPrefix(streams.Cursors) + ">"},
		streams.KVStream(streams.KeyserverKV): {streams.KVPrefix(streams.KeyserverKV) + ">"},
	}
	for i := range streams.MaxShards {
		configured[streams.AcceptedShard(i)] = streams.AcceptedConfig(c, k, i).Subjects
	}
	if len(natsauth.Stores()) != len(configured) {
		t.Fatalf("%d stores, %d streams", len(natsauth.Stores()), len(configured))
	}
	for _, st := range natsauth.Stores() {
		if !slices.Equal(st.Subjects, configured[st.Stream]) {
			t.Errorf("%s: natsauth says %v, the stream captures %v", st.Stream, st.Subjects, configured[st.Stream])
		}
	}
}

// TestConfigIsValid: the rendered block is a configuration nats-server
// takes, with an account per role and per stream, JetStream only in the
// streams' accounts.
func TestConfigIsValid(t *testing.T) {
	creds, err := natsauth.NewCreds()
	if err != nil {
		t.Fatal(err)
	}
	conf := natsauth.Config(creds.Users())
	opts := &server.Options{}
	if err := opts.ProcessConfigString(conf); err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	byName := map[string]*server.Account{}
	for _, a := range opts.Accounts {
		byName[a.Name] = a
	}
	for _, st := range natsauth.Stores() {
		if byName[st.Stream] == nil {
			t.Errorf("no account for stream %s", st.Stream)
		}
	}
	for _, r := range natsauth.Roles {
		if byName[natsauth.Account(r)] == nil {
			t.Errorf("no account for role %s", r)
		}
	}
	users := map[string]string{}
	for _, u := range opts.Nkeys {
		users[u.Nkey] = u.Account.Name
	}
	for _, u := range creds.Users() {
		if users[u.PubKey] != natsauth.Account(u.Role) {
			t.Errorf("%s's user is in account %q", u.Role, users[u.PubKey])
		}
	}
	if strings.Count(conf, "jetstream") != len(natsauth.Stores()) {
		t.Errorf("JetStream enabled in %d accounts, want the %d streams' only", strings.Count(conf, "jetstream"), len(natsauth.Stores()))
	}
}
