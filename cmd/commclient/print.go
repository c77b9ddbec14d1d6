package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/commsec/communicator/clientsdk"
)

// printer writes received messages, one a line, as text or JSON.
type printer struct {
	w      io.Writer
	json   bool
	prefix string // before each text line ("" for listen)
}

// jsonMessage is a message in --json output. Text is set when the payload
// is printable UTF-8; Hex always holds the payload.
type jsonMessage struct {
	Group   string  `json:"group"`
	Sender  string  `json:"sender"`
	Epoch   uint32  `json:"epoch"`
	Counter uint64  `json:"counter"`
	Text    *string `json:"text,omitempty"`
	Hex     string  `json:"hex"`
}

func (p printer) print(m clientsdk.Message) {
	if p.json {
		j := jsonMessage{Group: m.Group.String(), Sender: m.Sender.String(), Epoch: uint32(m.Epoch),
			Counter: m.Counter, Hex: hex.EncodeToString(m.Payload)}
		if printable(m.Payload) {
			s := string(m.Payload)
			j.Text = &s
		}
		line, _ := json.Marshal(j)
		fmt.Fprintf(p.w, "%s\n", line)
		return
	}
	fmt.Fprintf(p.w, "%s%s from %s epoch %d #%d  %s\n", p.prefix, m.Group, m.Sender.Short(), m.Epoch, m.Counter, payloadText(m.Payload))
}

// payloadText is the payload as text if it is printable, else "hex:" and
// its hex form (also for a text that starts with "hex:" itself).
func payloadText(b []byte) string {
	if printable(b) && !strings.HasPrefix(string(b), "hex:") {
		return string(b)
	}
	return "hex:" + hex.EncodeToString(b)
}

// printable reports whether b is valid UTF-8 made only of printable
// characters and spaces (no newline or other control character), so that
// one message stays one line.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}
