package keyserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// Version of the keyserver service, announced by NATS micro discovery.
const Version = "1.0.0"

// requestTimeout bounds the work of one admin request.
const requestTimeout = 2 * time.Minute

// recordTimeout bounds the write of a request's outcome.
const recordTimeout = 10 * time.Second

// Serve answers the admin API on nc until the returned service is stopped.
func (k *Keyserver) Serve(nc *nats.Conn) (micro.Service, error) {
	h := &adminHandler{k: k}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "comm-keyserver",
		Version:     Version,
		Description: "Communicator keyserver admin API (requests signed by an operator key)",
	})
	if err != nil {
		return nil, fmt.Errorf("keyserver: admin service: %w", err)
	}
	for _, op := range admin.Ops {
		name := strings.ReplaceAll(op, ".", "-")
		if err := svc.AddEndpoint(name, micro.HandlerFunc(h.handle), micro.WithEndpointSubject(admin.Subject(op))); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("keyserver: admin endpoint %s: %w", op, err)
		}
	}
	return svc, nil
}

type adminHandler struct{ k *Keyserver }

// refuse answers an unauthorized request: its origin, signature, time or
// nonce.
func (h *adminHandler) refuse(req micro.Request, err error) {
	h.k.Metrics.adminRefused.Inc()
	h.k.log.Warn().Err(err).Str("subject", req.Subject()).Msg("admin request refused")
	req.Error("403", err.Error(), nil)
}

func (h *adminHandler) handle(req micro.Request) {
	h.k.Metrics.adminRequests.Inc()
	if !streams.ReplyAllowed(req.Reply(), natsauth.InboxPrefix(natsauth.Admin)) {
		// Answering would publish with the keyserver's rights wherever the
		// requester chose: a bundle's subject, the event log.
		h.k.Metrics.adminForeignReplies.Inc()
		h.k.log.Warn().Str("reply", req.Reply()).Str("subject", req.Subject()).Msg("admin request with a foreign reply subject dropped")
		return
	}
	r, err := h.k.verifier.Authenticate(req.Subject(), req.Data())
	if err != nil {
		h.refuse(req, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	digest := sha256.Sum256(req.Data())
	stale := h.k.verifier.Fresh(r, h.k.cfg.Now())
	if stale == nil {
		seq, err := h.k.requests.take(ctx, r, digest)
		switch {
		case err == nil:
			h.run(ctx, req, r, digest, seq)
			return
		case !errors.Is(err, errTaken):
			h.k.log.Error().Err(err).Str("op", r.Op).Msg("admin request not recorded; not run")
			req.Error("500", "the keyserver could not record the request; nothing was changed, send it again", nil)
			return
		}
	}
	h.again(ctx, req, r, digest, stale)
}

// run runs a request taken at record sequence seq, records its outcome
// and answers it.
func (h *adminHandler) run(ctx context.Context, req micro.Request, r *admin.Request, digest [32]byte, seq uint64) {
	if hold := h.k.cfg.FaultHoldRequest; hold != nil {
		hold(r)
	}
	reply, err := h.k.dispatch(ctx, r)
	// The outcome is recorded even when the request used up its time.
	fctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if ferr := h.k.requests.finish(fctx, r, seq, outcome(r, digest, reply, err)); ferr != nil {
		h.k.log.Error().Err(ferr).Str("op", r.Op).Msg("admin request's outcome not recorded; a retry is answered from the log")
	}
	if err != nil {
		h.k.log.Info().Err(err).Str("op", r.Op).Msg("admin command refused")
		req.Error(errorCode(err), err.Error(), nil)
		return
	}
	h.k.log.Info().Str("op", r.Op).Hex("operator", r.Operator[:4]).Msg("admin command done")
	data, _ := msgpack.Marshal(reply)
	req.Respond(data)
}

func errorCode(err error) string {
	switch {
	case errors.Is(err, events.ErrConflict):
		return "409"
	case isCommandError(err):
		return "400"
	}
	return "500"
}

func isCommandError(err error) bool {
	for _, e := range []error{fold.ErrClientExists, fold.ErrUnknownClient, fold.ErrClientRevoked,
		fold.ErrGroupExists, fold.ErrUnknownGroup, fold.ErrGroupDeleted, fold.ErrAlreadyMember,
		fold.ErrNotMember, fold.ErrNoClients, fold.ErrDuplicateClient, fold.ErrNoMembers,
		fold.ErrBadName, ErrInvalidClientID, record.ErrMalformed, errBadArgs} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

var errBadArgs = errors.New("bad arguments")

// dispatch runs one verified request.
func (k *Keyserver) dispatch(ctx context.Context, r *admin.Request) (*admin.Reply, error) {
	a := Actor{Key: [32]byte(r.Operator), Request: r.Nonce}
	switch r.Op {
	case admin.OpRegister:
		return k.adminRegister(ctx, a, r.Args)
	case admin.OpRevoke:
		return done("revoked", k.RevokeClient(ctx, a, r.Args.Name, r.Args.Reason))
	case admin.OpCreate:
		g, err := k.CreateGroup(ctx, a, r.Args.Name, record.Policy{MaxMessages: r.Args.MaxMessages, MaxAge: r.Args.MaxAge})
		return &admin.Reply{Message: "created", Group: g.String()}, err
	case admin.OpAdd:
		return epochReply(k.AddMembers(ctx, a, r.Args.Group, r.Args.Clients))
	case admin.OpRemove:
		return epochReply(k.RemoveMembers(ctx, a, r.Args.Group, r.Args.Clients, r.Args.Reason))
	case admin.OpRekey:
		return epochReply(k.Rekey(ctx, a, r.Args.Group, r.Args.Reason))
	case admin.OpDelete:
		return done("deleted", k.DeleteGroup(ctx, a, r.Args.Group))
	case admin.OpList:
		return k.list(), nil
	}
	return nil, fmt.Errorf("%w: unknown operation %q", errBadArgs, r.Op)
}

func done(msg string, err error) (*admin.Reply, error) {
	if err != nil {
		return nil, err
	}
	return &admin.Reply{Message: msg}, nil
}

func epochReply[E ~uint32](e E, err error) (*admin.Reply, error) {
	if err != nil {
		return nil, err
	}
	return &admin.Reply{Message: fmt.Sprintf("epoch %d opened", e), Epoch: uint32(e)}, nil
}

func (k *Keyserver) adminRegister(ctx context.Context, a Actor, args admin.Args) (*admin.Reply, error) {
	pub, err := keys.DecodeClientPublic(args.Client)
	if err != nil {
		return nil, fmt.Errorf("%w: client public key file: %v", errBadArgs, err)
	}
	if err := k.RegisterClient(ctx, a, pub, args.Name); err != nil {
		return nil, err
	}
	return &admin.Reply{Message: "registered " + pub.ID.String()}, nil
}

// list describes every client and live group.
func (k *Keyserver) list() *admin.Reply {
	r := &admin.Reply{}
	k.proj.Read(func(s *fold.State) {
		for _, c := range s.Clients {
			r.Clients = append(r.Clients, admin.ClientInfo{ID: c.ID.String(), Name: c.Name, Revoked: c.Revoked, Since: c.Registered})
		}
		for _, g := range s.Groups {
			if !g.Deleted {
				r.Groups = append(r.Groups, groupInfo(s, g))
			}
		}
	})
	sort.Slice(r.Clients, func(i, j int) bool { return r.Clients[i].Name+r.Clients[i].ID < r.Clients[j].Name+r.Clients[j].ID })
	sort.Slice(r.Groups, func(i, j int) bool { return r.Groups[i].Name < r.Groups[j].Name })
	return r
}

func groupInfo(s *fold.State, g *fold.Group) admin.GroupInfo {
	info := admin.GroupInfo{ID: g.ID.String(), Name: g.Name, Epoch: uint32(g.Epoch), MaxMessages: g.Policy.MaxMessages, MaxAge: g.Policy.MaxAge}
	for _, id := range g.MemberList() {
		name := id.String()
		if c := s.Clients[id]; c != nil && c.Name != "" {
			name = c.Name
		}
		info.Members = append(info.Members, name)
	}
	sort.Strings(info.Members)
	return info
}
