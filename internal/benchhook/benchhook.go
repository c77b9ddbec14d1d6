// Package benchhook holds switches that benchmarks in this module turn
// to measure what a step costs by leaving it out. They are not settings:
// no flag, file or environment variable reaches them, and only code in
// this module can import the package (it is internal). Every switch is
// off unless a benchmark turns it on, and a benchmark turns it off again
// when its measurement ends.
package benchhook

import "sync/atomic"

var skipEnvelopeSignatures atomic.Bool

// SkipEnvelopeSignatures makes the relays of this process store envelopes
// without checking their senders' signatures (on), or check them again
// (off). commbench's sat2-nosig row turns it on to show what the check
// costs on the relay's accept path; nothing else may.
func SkipEnvelopeSignatures(on bool) { skipEnvelopeSignatures.Store(on) }

// EnvelopeSignaturesSkipped reports whether SkipEnvelopeSignatures is on.
func EnvelopeSignaturesSkipped() bool { return skipEnvelopeSignatures.Load() }
