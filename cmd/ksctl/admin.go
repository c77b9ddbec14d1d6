package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol/keys"
)

func registerCommand() *command {
	c := &command{name: "client register", args: "FILE.pub [--name NAME]",
		summary: "register a client from its public key file",
		help: `Registers a client with the keyserver from its public key file (the
client's address and key-wrap key, made by the client's keygen). A name
(letters, digits, '-', '_', '.') lets you refer to it in group commands;
otherwise use its 64-digit hex id.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		name := fs.String("name", "", "a `NAME` for the client")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 1, 1); err != nil {
				return err
			}
			data, err := keys.ReadFile(args[0])
			if err != nil {
				return err
			}
			pub, err := keys.DecodeClientPublic(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if _, err := a.do(ctx, admin.OpRegister, admin.Args{Client: data, Name: *name}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "registered client %s\n  id %s\n", orID(*name, pub.ID.String()), pub.ID)
			return nil
		}
	}
	return c
}

func orID(name, id string) string {
	if name == "" {
		return id
	}
	return name
}

func revokeCommand() *command {
	c := &command{name: "client revoke", args: "CLIENT [--reason TEXT]",
		summary: "revoke a client and remove it from all its groups",
		help: `Revokes a client (by name or hex id): it can no longer be added to a
group, and every group it is in opens a new epoch without it. Revocation
is permanent; a revoked client's keys must be replaced and registered
anew.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		reason := fs.String("reason", "", "why: the `TEXT` recorded in the signed event")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 1, 1); err != nil {
				return err
			}
			if _, err := a.do(ctx, admin.OpRevoke, admin.Args{Name: args[0], Reason: *reason}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "revoked client %s (removed from every group it was in)\n", args[0])
			return nil
		}
	}
	return c
}

func createCommand() *command {
	c := &command{name: "group create", args: "NAME [--max-messages N] [--max-age DUR]",
		summary: "create an empty group",
		help: `Creates an empty group. Its first epoch opens when the first members are
added. The keyserver rekeys it automatically after --max-messages accepted
messages or when an epoch is older than --max-age (e.g. 24h, 7d); zero
disables a limit.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		maxMsgs := fs.Uint64("max-messages", 0, "rekey after `N` messages in an epoch")
		var maxAge time.Duration
		service.DurationVar(fs, &maxAge, "max-age", 0, "rekey when an epoch is older than `DUR`")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 1, 1); err != nil {
				return err
			}
			r, err := a.do(ctx, admin.OpCreate, admin.Args{Name: args[0], MaxMessages: *maxMsgs, MaxAge: maxAge})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "created group %s (id %s), %s\n", args[0], r.Group, policy(*maxMsgs, maxAge))
			return nil
		}
	}
	return c
}

func policy(msgs uint64, age time.Duration) string {
	var p []string
	if msgs > 0 {
		p = append(p, fmt.Sprintf("every %d messages", msgs))
	}
	if age > 0 {
		d := service.Duration(age)
		p = append(p, "every "+d.String())
	}
	if len(p) == 0 {
		return "rekeyed on membership changes only"
	}
	return "rekeyed " + strings.Join(p, " or ") + " and on membership changes"
}

// epochCommand builds the commands that open a new epoch of a group.
func epochCommand(name, args, summary, help, op string, minClients int, withReason bool) *command {
	c := &command{name: name, args: args, summary: summary, help: help}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		var reason *string
		if withReason {
			reason = fs.String("reason", "", "why: the `TEXT` recorded in the signed event")
		}
		return func(ctx context.Context, a *app, args []string) error {
			max := -1
			if minClients == 0 {
				max = 1
			}
			if err := want(c, args, 1+minClients, max); err != nil {
				return err
			}
			req := admin.Args{Group: args[0], Clients: args[1:]}
			if reason != nil {
				req.Reason = *reason
			}
			r, err := a.do(ctx, op, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "group %s: epoch %d opened, %s\n", args[0], r.Epoch, change(op, args[1:]))
			return nil
		}
	}
	return c
}

func change(op string, clients []string) string {
	switch op {
	case admin.OpAdd:
		return strings.Join(clients, ", ") + " added; a fresh key is wrapped to every member"
	case admin.OpRemove:
		return strings.Join(clients, ", ") + " removed; a fresh key is wrapped to the remaining members"
	}
	return "rekeyed; a fresh key is wrapped to every member"
}

func addCommand() *command {
	return epochCommand("group add", "GROUP CLIENT...", "add clients to a group (opens a new epoch)",
		`Adds registered clients (names or hex ids) to a group. The group opens a
new epoch with a fresh key, wrapped to every member; the new members
cannot read what was sent before they joined.`, admin.OpAdd, 1, false)
}

func removeCommand() *command {
	return epochCommand("group remove", "GROUP CLIENT... [--reason TEXT]", "remove clients from a group (opens a new epoch)",
		`Removes clients from a group. The group opens a new epoch with a fresh
key that the removed clients never get. The reason is recorded in the
signed event and shown by 'ksctl audit'.`, admin.OpRemove, 1, true)
}

func rekeyCommand() *command {
	return epochCommand("group rekey", "GROUP [--reason TEXT]", "give a group a fresh key (opens a new epoch)",
		`Opens a new epoch of a group with the same members and a fresh key, for
example after a device was briefly out of your control.`, admin.OpRekey, 0, true)
}

func deleteCommand() *command {
	c := &command{name: "group delete", args: "GROUP",
		summary: "delete a group",
		help: `Deletes a group. Its history stays in the event log, where 'ksctl audit'
still finds it; its name can be used for a new group.`}
	c.setup = func(*flag.FlagSet) func(context.Context, *app, []string) error {
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 1, 1); err != nil {
				return err
			}
			if _, err := a.do(ctx, admin.OpDelete, admin.Args{Group: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted group %s\n", args[0])
			return nil
		}
	}
	return c
}
