// Package protocol holds what every part of the Communicator agrees on: the
// protocol version and suite, the domain-separation labels, the identifiers
// (client, group, epoch) and the table of errors with the generic codes a
// peer is told.
//
// The mechanisms live in one small package each:
//
//   - handshake: the client-server handshake M1..M4 and its key schedule.
//   - channel: the MAC'd frames that follow the handshake, over a net.Conn.
//   - envelope: the group message (clear metadata, XChaCha20-Poly1305 payload).
//   - bundle: a group key wrapped to one member with HPKE, signed by the keyserver.
//   - keys: long-term keys and their files on disk.
//   - clientstate: a client's counters, replay state and group keys, persisted.
//
// docs/PROTOCOL.md specifies all of it byte by byte; protocol/testdata holds
// the test vectors that TestVectors walks.
package protocol
