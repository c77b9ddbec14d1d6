// Package events is the keyserver's event log on JetStream: the signed,
// hash-chained changes from which every service derives who is
// registered and who is in which group, and that an audit replays.
//
// The record itself (its bytes, signature and hash chain) is package
// record, specified in docs/PROTOCOL.md §15; the state the records fold
// into is package fold. This package stores and replays records:
//
//   - Store is the stream: one subject per aggregate,
//     "comm.events.<aggregate>", appends with optimistic concurrency (the
//     expected last sequence of the aggregate's subject), so two keyserver
//     instances can never fork an aggregate's history: one of them gets
//     ErrConflict, reloads and retries.
//   - Projection is the one fold every service reads: it checks the
//     subject, the chain, the signature and the validity of every record
//     it applies. Follow keeps it up to date.
//   - Loader builds the projection at a cold start (Load): it defers
//     signatures to the aggregates' heads, uses the newest checkpoint (the
//     keyserver's signature over the log hash up to a point, in its own
//     stream) to skip the heads it covers, and decodes records ahead of
//     the fold on a second goroutine.
//   - Writer completes, signs and appends the keyserver's events, and
//     stores a checkpoint every so often.
package events
