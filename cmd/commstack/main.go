// Command commstack runs the Communicator on one machine.
//
// Until the keyserver, relay and gateway exist, it offers one mode:
//
//	commstack demo
//
// which runs the protocol core end to end on loopback TCP: a gateway and
// three clients perform the handshake, the keyserver's signed key bundles
// reach the clients over the channel, a group message travels as an
// envelope, and a replayed message is refused.
package main

import (
	"flag"
	"fmt"
	"os"
)

const usage = `commstack runs the Communicator on one machine.

Usage:
  commstack demo     run the protocol demo on 127.0.0.1 and print each step

Flags:
`

func main() {
	flag.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || flag.Arg(0) != "demo" {
		flag.Usage()
		os.Exit(2)
	}
	if err := runDemo(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "commstack:", err)
		os.Exit(1)
	}
}
