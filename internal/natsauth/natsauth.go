// Package natsauth is the Communicator's trust boundary on NATS: one NATS
// account per role and one per stream, the imports and exports between
// them, and one nkey user per role with least-privilege permissions. It
// renders them into the authorization block of nats-server's
// configuration, the same for the embedded server of commstack, for the
// tests and for the cluster of docker-compose.yml.
//
// Why accounts, not permissions alone: a NATS user writes through more
// than its publish permissions. A service answers a request on whatever
// reply subject it carries, with the service's rights; the server
// delivers a consumer's messages to its deliver subject, and a pull
// request's messages to its reply subject, inside the stream's account,
// whatever the creator's permissions say. So:
//
//   - every stream lives alone in a data account without users, which
//     exports exactly the JetStream API and stream subjects each role may
//     use. A consumer's deliver subject is interpreted in that account,
//     where the only stream is the consumer's own (the server refuses
//     that as a cycle) and nothing else subscribes;
//   - every role lives in an account without JetStream, which imports
//     what the role may use, under the same subjects. Replies to a
//     request that crossed accounts (a pull request, a JetStream API
//     call, a relay's verdict, the keyserver's admin answer) are mapped
//     back into the requester's account, which holds no stream: a reply
//     subject can never make another role write for the requester;
//   - the services answer only a cross-account response subject or a
//     caller's inbox (streams.ReplyAllowed), and have allow_responses.
//
// What each role may do with each stream is the table Stores; the
// request/reply services are Services. docs/SECURITY.md has the matrix of
// role × write path with the test of each cell.
package natsauth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/commsec/communicator/streams"
)

// Role is a kind of NATS user.
type Role string

// The roles.
const (
	Keyserver Role = "keyserver"
	Relay     Role = "relay"
	Gateway   Role = "gateway"
	Admin     Role = "admin"   // ksctl's commands through the keyserver's admin API
	Auditor   Role = "auditor" // ksctl audit: reads the event log
)

// Roles lists every role.
var Roles = []Role{Keyserver, Relay, Gateway, Admin, Auditor}

// InboxPrefix is the reply-subject prefix a role's connections use
// (nats.CustomInboxPrefix).
func InboxPrefix(r Role) string { return "_INBOX_" + string(r) }

// Account is the NATS account of a role.
func Account(r Role) string { return strings.ToUpper(string(r)) }

// Op is what a role may do with a stream; Ops combine.
type Op uint8

// The operations.
const (
	Manage Op = 1 << iota // create and update the stream, read its info, move its leader (streams.SpreadLeaders)
	Read                  // read its info and messages, through gets and consumers
	Write                 // publish to its subjects
	Trim                  // purge it (by subject, to the retention period)
	Watch                 // push consumers delivering to the role's inbox (key-value watches)
)

// Store is one stream, alone in a data account named after it.
type Store struct {
	Stream   string      // the stream's (and the account's) name
	Subjects []string    // the subjects the stream captures
	Access   map[Role]Op // what each role may do with it; nothing for a role not listed
}

// Stores is what each role may do with each stream.
func Stores() []Store {
	log := map[Role]Op{Keyserver: Manage | Read | Write, Relay: Read, Gateway: Read, Auditor: Read}
	kv := func(bucket string, access map[Role]Op) Store {
		return Store{streams.KVStream(bucket), []string{streams.KVPrefix(bucket) + ">"}, access}
	}
	out := []Store{
		{streams.Events, []string{streams.AllEvents}, log},
		{streams.Checkpoints, []string{streams.CheckpointSubject}, log},
		{streams.Bundles, []string{streams.AllBundles}, map[Role]Op{Keyserver: Manage | Read | Write, Gateway: Read}},
		{streams.AdminRequests, []string{streams.AllAdminRequests}, map[Role]Op{Keyserver: Manage | Read | Write}},
	}
	out = append(out, AcceptedShards()...)
	return append(out,
		kv(streams.Relays, map[Role]Op{Keyserver: Manage, Relay: Read | Write | Watch}),
		kv(streams.Cursors, map[Role]Op{Keyserver: Manage, Gateway: Read | Write}),
		kv(streams.KeyserverKV, map[Role]Op{Keyserver: Manage | Read | Write | Watch}),
	)
}

// AcceptedShards are the stores of every shard the accepted envelopes may
// have, 0 to streams.MaxShards-1, whatever a deployment's K: K is chosen
// when the keyserver creates the streams, and is not part of the NATS
// configuration. An account whose stream does not exist holds nothing.
func AcceptedShards() []Store {
	out := make([]Store, streams.MaxShards)
	for i := range out {
		out[i] = Store{streams.AcceptedShard(i), []string{streams.AcceptedShardPrefix(i) + ">"},
			map[Role]Op{Keyserver: Manage | Read, Relay: Read | Write | Trim, Gateway: Read}}
	}
	return out
}

// Service is a request/reply subject one role answers for others.
type Service struct {
	Subject  string
	Provider Role
	Callers  []Role
}

// Services lists the request/reply services.
var Services = []Service{
	{streams.AllInbound, Relay, []Role{Gateway}},
	{streams.AllAdmin, Keyserver, []Role{Admin}},
}

// Subject is one subject a role may publish to, and how it crosses into
// the data account: as a request whose answers may be many (stream).
type Subject struct {
	Name   string
	Stream bool // the answers are a stream of messages (pull requests)
}

// api returns the subjects an operation on stream covers.
func api(stream string, subjects []string, op Op) []Subject {
	p := "$JS.API."
	var out []Subject
	add := func(names ...string) {
		for _, n := range names {
			out = append(out, Subject{Name: n})
		}
	}
	if op&Manage != 0 {
		add(p+"STREAM.CREATE."+stream, p+"STREAM.UPDATE."+stream, p+"STREAM.INFO."+stream, p+"STREAM.LEADER.STEPDOWN."+stream)
	}
	if op&(Read|Watch) != 0 {
		add(p+"STREAM.INFO."+stream, p+"STREAM.MSG.GET."+stream, p+"DIRECT.GET."+stream+".>",
			p+"CONSUMER.CREATE."+stream+".>", p+"CONSUMER.DELETE."+stream+".*", p+"CONSUMER.INFO."+stream+".*")
		// A batch direct get (multi_last: a gateway's snapshot entries
		// checked against their records) answers with many messages.
		out = append(out, Subject{Name: p + "DIRECT.GET." + stream, Stream: true},
			Subject{Name: p + "CONSUMER.MSG.NEXT." + stream + ".*", Stream: true})
	}
	if op&Write != 0 {
		add(subjects...)
	}
	if op&Trim != 0 {
		add(p + "STREAM.PURGE." + stream)
	}
	if op&Watch != 0 {
		add("$JS.FC." + stream + ".>")
	}
	return dedupe(out)
}

func dedupe(in []Subject) []Subject {
	seen := map[string]bool{}
	var out []Subject
	for _, s := range in {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	return out
}

// Permissions are a role's user permissions.
type Permissions struct {
	PubAllow, SubAllow []string
	// AllowResponses lets a service answer the requests it receives
	// (once each), whatever their reply subject; the services check the
	// subject themselves (streams.ReplyAllowed).
	AllowResponses bool
}

// Of returns the permissions of a role: it may publish exactly what its
// account imports, and subscribe to its inbox and the services it
// provides.
func Of(r Role) Permissions {
	// $JS.API.INFO reaches the role's home store (see home): nats.go asks
	// it before it creates a bucket.
	p := Permissions{PubAllow: []string{"$JS.API.INFO"}}
	for _, st := range Stores() {
		for _, s := range api(st.Stream, st.Subjects, st.Access[r]) {
			p.PubAllow = append(p.PubAllow, s.Name)
		}
	}
	p.SubAllow = []string{InboxPrefix(r) + ".>"}
	for _, svc := range Services {
		if svc.Provider == r {
			p.SubAllow = append(p.SubAllow, svc.Subject)
			p.AllowResponses = true
		}
		for _, c := range svc.Callers {
			if c == r {
				p.PubAllow = append(p.PubAllow, svc.Subject)
			}
		}
	}
	if r == Keyserver {
		p.SubAllow = append(p.SubAllow, "$SRV.>") // NATS micro's discovery of the admin service
	}
	if r == LiveReader {
		p.SubAllow = append(p.SubAllow, streams.AllLive, streams.LeaderElectedPrefix+"*")
	}
	p.PubAllow = uniq(p.PubAllow)
	return p
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// User is one role's nkey user.
type User struct {
	Role   Role
	PubKey string // the nkey's public key ("U...")
}

// Config renders the accounts of the Communicator with the users, for a
// nats-server configuration file; extra are more account blocks (see
// ScratchAccount).
func Config(users []User, extra ...string) string {
	var b strings.Builder
	b.WriteString("# Generated by package natsauth: one account per stream (no users), one per role (no JetStream).\n")
	b.WriteString("accounts {\n")
	for _, st := range Stores() {
		writeStore(&b, st)
	}
	for _, r := range Roles {
		writeRole(&b, r, users)
	}
	for _, e := range extra {
		b.WriteString(e)
	}
	b.WriteString("}\n")
	return b.String()
}

// ScratchAccount is an account of its own with JetStream and one user
// (nkey pub), for the load tools' raw measurements beside the stack on
// the same server: it shares nothing with the Communicator's accounts.
// No deployment has it.
func ScratchAccount(pub string) string {
	return fmt.Sprintf("  SCRATCH {\n    jetstream: enabled\n    users [ { nkey: %q } ]\n  }\n", pub)
}

// home is the store whose account answers a role's $JS.API.INFO: an
// account that imports nothing there gets the server's own JetStream
// API, which would answer every $JS.API request (with "not enabled")
// besides the imports.
func home(r Role) string {
	for _, st := range Stores() {
		if st.Access[r] != 0 {
			return st.Stream
		}
	}
	return streams.Events
}

func writeStore(b *strings.Builder, st Store) {
	fmt.Fprintf(b, "  %s {\n    jetstream { max_streams: 1 }\n    exports [\n", st.Stream)
	byName := map[string][]string{}
	stream := map[string]bool{}
	var order []string
	for _, r := range Roles {
		for _, s := range api(st.Stream, st.Subjects, st.Access[r]) {
			if byName[s.Name] == nil {
				order = append(order, s.Name)
			}
			byName[s.Name] = append(byName[s.Name], Account(r))
			stream[s.Name] = stream[s.Name] || s.Stream
		}
		if home(r) == st.Stream {
			if byName["$JS.API.INFO"] == nil {
				order = append(order, "$JS.API.INFO")
			}
			byName["$JS.API.INFO"] = append(byName["$JS.API.INFO"], Account(r))
		}
	}
	for _, name := range order {
		resp := ""
		if stream[name] {
			resp = `, response: stream, threshold: "5m"`
		}
		fmt.Fprintf(b, "      { service: %q, accounts: %s%s }\n", name, list(byName[name]), resp)
	}
	for _, r := range Roles {
		if st.Access[r]&Watch != 0 {
			fmt.Fprintf(b, "      { stream: %q, accounts: [%s] }\n", InboxPrefix(r)+".>", Account(r))
		}
	}
	if live := LiveExport(st.Stream); live != "" {
		fmt.Fprintf(b, "      { stream: %q, accounts: [%s] }\n", live, Account(LiveReader))
		fmt.Fprintf(b, "      { stream: %q, accounts: [%s] }\n", streams.LeaderElectedPrefix+st.Stream, Account(LiveReader))
	}
	b.WriteString("    ]\n  }\n")
}

func writeRole(b *strings.Builder, r Role, users []User) {
	fmt.Fprintf(b, "  %s {\n    users [\n", Account(r))
	p := Of(r)
	for _, u := range users {
		if u.Role != r {
			continue
		}
		fmt.Fprintf(b, "      { nkey: %q, permissions: {\n", u.PubKey)
		fmt.Fprintf(b, "          publish: { allow: %s }\n", list(p.PubAllow))
		fmt.Fprintf(b, "          subscribe: { allow: %s }\n", list(p.SubAllow))
		if p.AllowResponses {
			b.WriteString("          allow_responses: true\n")
		}
		b.WriteString("      } }\n")
	}
	b.WriteString("    ]\n    imports [\n")
	fmt.Fprintf(b, "      { service: { account: %s, subject: \"$JS.API.INFO\" } }\n", home(r))
	for _, st := range Stores() {
		for _, s := range api(st.Stream, st.Subjects, st.Access[r]) {
			fmt.Fprintf(b, "      { service: { account: %s, subject: %q } }\n", st.Stream, s.Name)
		}
		if st.Access[r]&Watch != 0 {
			fmt.Fprintf(b, "      { stream: { account: %s, subject: %q } }\n", st.Stream, InboxPrefix(r)+".>")
		}
		if live := LiveExport(st.Stream); live != "" && r == LiveReader {
			fmt.Fprintf(b, "      { stream: { account: %s, subject: %q } }\n", st.Stream, live)
			fmt.Fprintf(b, "      { stream: { account: %s, subject: %q } }\n", st.Stream, streams.LeaderElectedPrefix+st.Stream)
		}
	}
	for _, svc := range Services {
		for _, c := range svc.Callers {
			if c == r {
				fmt.Fprintf(b, "      { service: { account: %s, subject: %q } }\n", Account(svc.Provider), svc.Subject)
			}
		}
	}
	b.WriteString("    ]\n")
	var exports []string
	for _, svc := range Services {
		if svc.Provider == r {
			callers := make([]string, len(svc.Callers))
			for i, c := range svc.Callers {
				callers[i] = Account(c)
			}
			exports = append(exports, fmt.Sprintf("      { service: %q, accounts: %s }\n", svc.Subject, list(callers)))
		}
	}
	if len(exports) > 0 {
		b.WriteString("    exports [\n" + strings.Join(exports, "") + "    ]\n")
	}
	b.WriteString("  }\n")
}

func list(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// LiveReader is the role that receives the live feeds (streams.AllLive):
// each accepted-message shard's account and the bundles' account export
// the subjects their stream republishes on as a stream export to its
// account, which imports them. A subscription of the role to one group's
// or one member's live subject propagates, narrowed to that subject,
// into every exporting account and across the cluster's routes, so a
// stream's leader sends each message only to the gateways that asked for
// it (TestLiveInterestCrossesAccounts). Those accounts also export the
// advisories of their stream's leader elections to it
// (streams.LeaderElectedPrefix).
const LiveReader = Gateway

// LiveExport is the live subject the account of stream exports, or "".
func LiveExport(stream string) string {
	if stream == streams.Bundles {
		return streams.LiveBundlePrefix + ">"
	}
	for i := range streams.MaxShards {
		if stream == streams.AcceptedShard(i) {
			return streams.LiveMsgPrefix + ">"
		}
	}
	return ""
}

// SortUsers orders users by role, for a stable rendering.
func SortUsers(users []User) {
	sort.Slice(users, func(i, j int) bool { return users[i].Role < users[j].Role })
}
