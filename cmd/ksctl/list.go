package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
)

func listCommand() *command {
	c := &command{name: "list", args: "[--json]",
		summary: "list clients and groups",
		help: `Lists every registered client (revoked ones too) and every group that is
not deleted, with its current epoch, rekey policy and members, as the
keyserver sees them.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		asJSON := fs.Bool("json", false, "print JSON instead of tables")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			r, err := a.do(ctx, admin.OpList, admin.Args{})
			if err != nil {
				return err
			}
			if *asJSON {
				return writeListJSON(a.stdout, r)
			}
			writeList(a.stdout, r)
			return nil
		}
	}
	return c
}

func writeListJSON(w io.Writer, r *admin.Reply) error {
	out := struct {
		Clients []admin.ClientInfo `json:"clients"`
		Groups  []admin.GroupInfo  `json:"groups"`
	}{append([]admin.ClientInfo{}, r.Clients...), append([]admin.GroupInfo{}, r.Groups...)}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeList(w io.Writer, r *admin.Reply) {
	fmt.Fprintf(w, "CLIENTS (%d)\n", len(r.Clients))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tREGISTERED (UTC)\tID")
	for _, c := range r.Clients {
		status := "active"
		if c.Revoked {
			status = "revoked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(c.Name), status, c.Since.UTC().Format(time.DateTime), c.ID)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nGROUPS (%d)\n", len(r.Groups))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tEPOCH\tID\tREKEY POLICY\tMEMBERS")
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g.Name, g.Epoch, g.ID, shortPolicy(g), members(g.Members))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortPolicy(g admin.GroupInfo) string {
	var p []string
	if g.MaxMessages > 0 {
		p = append(p, fmt.Sprintf("%d msgs", g.MaxMessages))
	}
	if g.MaxAge > 0 {
		d := service.Duration(g.MaxAge)
		p = append(p, d.String())
	}
	if len(p) == 0 {
		return "-"
	}
	return strings.Join(p, ", ")
}

// members lists up to ten members and counts the rest.
func members(names []string) string {
	const show = 10
	switch {
	case len(names) == 0:
		return "(none)"
	case len(names) > show:
		return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
	}
	return strings.Join(names, ", ")
}
