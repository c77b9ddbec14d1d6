package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const timeFormat = "2006-01-02 15:04:05"

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a terminal. A broken log is said
// first, and again in place of what was verified.
func (r *Report) WriteText(w io.Writer) error {
	if b := r.Broken; b != nil {
		fmt.Fprintf(w, "VERIFICATION FAILED: first broken event %d on %s: %s\n", b.StreamSeq, b.Subject, b.Reason)
		fmt.Fprintf(w, "What follows is what the log says, events that failed left out: it is NOT verified.\n\n")
	}
	fmt.Fprintf(w, "Group %s (id %s)\n", r.Name, r.Group)
	fmt.Fprintf(w, "  created %s UTC by %s\n", r.Created.Format(timeFormat), short(r.CreatedBy))
	if r.Deleted != nil {
		fmt.Fprintf(w, "  deleted %s UTC\n", r.Deleted.Format(timeFormat))
	}
	fmt.Fprintln(w, "\nEpochs (who held each key)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  epoch\tfrom (UTC)\tto (UTC)\tmembers\topened by")
	for _, e := range r.Epochs {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.Number, e.Start.Format(timeFormat), until(e.End), list(e.Members), r.cause(e))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nMembership")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, m := range r.Members {
		for _, s := range m.Spans {
			fmt.Fprintf(tw, "  %s\tepochs %s\t%s → %s\n", m.Name, epochs(s), s.From.Format(timeFormat), until(s.To))
		}
	}
	tw.Flush()
	if b := r.Broken; b != nil {
		fmt.Fprintf(w, "\nNOT VERIFIED: the log is broken at event %d (%s): %s\n", b.StreamSeq, b.Subject, b.Reason)
		return nil
	}
	v := r.Verified
	fmt.Fprintf(w, "\nVerified: %d group events (each signature and the hash chain), %d log events (hash chains and head signatures)\n",
		v.GroupEvents, v.LogEvents)
	fmt.Fprintf(w, "  keyserver key %s\n  head: group event %d, hash %s\n", v.KeyserverKey, v.HeadSeq, v.HeadHash)
	return nil
}

func (r *Report) cause(e Epoch) string {
	var what string
	for _, c := range r.Changes {
		if c.Epoch == e.Number {
			what = strings.TrimPrefix(c.Type, "group.")
			if len(c.Clients) > 0 {
				what += ": " + list(c.Clients)
			}
		}
	}
	if e.Reason != "" {
		what += fmt.Sprintf(" (%q)", e.Reason)
	}
	return what + " — " + short(e.By)
}

func until(t *time.Time) string {
	if t == nil {
		return "now"
	}
	return t.Format(timeFormat)
}

func epochs(s Span) string {
	if s.To == nil {
		return fmt.Sprintf("%d–", s.FromEpoch)
	}
	if s.ToEpoch < s.FromEpoch {
		return fmt.Sprintf("none (removed in epoch %d)", s.FromEpoch)
	}
	return fmt.Sprintf("%d–%d", s.FromEpoch, s.ToEpoch)
}

func list(names []string) string {
	const max = 8
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	if len(names) == 0 {
		return "(nobody)"
	}
	return strings.Join(names, ", ")
}

// short shortens "operator <64 hex>" to its first 8 digits.
func short(by string) string {
	if rest, ok := strings.CutPrefix(by, "operator "); ok && len(rest) > 8 {
		return "operator " + rest[:8] + "…"
	}
	return by
}
