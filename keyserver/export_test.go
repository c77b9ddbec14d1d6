package keyserver

import "github.com/commsec/communicator/protocol"

// MinAtomicBatch is minAtomicBatch, for the tests of package keyserver_test.
const MinAtomicBatch = minAtomicBatch

// EscrowKey is the bookkeeping bucket's key of g's escrow.
func EscrowKey(g protocol.GroupID) string { return escrowKey(g) }
