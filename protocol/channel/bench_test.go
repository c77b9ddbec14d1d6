package channel_test

// Benchmarks of frame sealing and opening beside their bound, two bare
// HMAC-SHA256 computations over the same bytes.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
)

// benchBodySize is the body of the frames measured here. A frame of it is
// channel.Overhead+256 = 301 bytes; the MAC covers the first 269.
const benchBodySize = 256

// benchKeys returns the client-to-server key the frames are MAC'd under and
// the server's own sending key.
func benchKeys() (c2s, s2c *[32]byte) {
	c2s, s2c = new([32]byte), new([32]byte)
	for i := range c2s {
		c2s[i], s2c[i] = byte(i), byte(0x80+i)
	}
	return c2s, s2c
}

// benchPair is a client's Sealer and the server's Opener for its frames.
func benchPair() (*channel.Sealer, *channel.Opener) {
	c2s, s2c := benchKeys()
	return channel.NewSealer(c2s), channel.NewOpener(c2s, s2c, channel.ClientToServer)
}

// benchSealOpen seals the next Send frame and opens it at once: the Opener
// accepts only the exact next counter.
func benchSealOpen(s *channel.Sealer, o *channel.Opener, buf, body []byte) error {
	frame, err := s.Seal(buf[:0], channel.TypeSend, body)
	if err != nil {
		return err
	}
	f, err := o.Open(frame)
	if err != nil {
		return err
	}
	if f.Type != channel.TypeSend || len(f.Body) != len(body) {
		return errors.New("channel: frame changed on the way")
	}
	return nil
}

// BenchmarkSealOpen256 seals and opens one 256-byte Send frame. It must
// not allocate.
func BenchmarkSealOpen256(b *testing.B) {
	s, o := benchPair()
	body := make([]byte, benchBodySize)
	buf := make([]byte, 0, channel.Overhead+benchBodySize)
	// The first Reset of an HMAC state saves the keyed state once; keep
	// that one-time allocation out of the measurement.
	if err := benchSealOpen(s, o, buf, body); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	for b.Loop() {
		if err := benchSealOpen(s, o, buf, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMAC256Raw is the bound of BenchmarkSealOpen256: HMAC-SHA256
// over the 269 MAC'd bytes of the frame (length, type, counter, body) once
// to seal and once to open, with reused HMAC states.
func BenchmarkHMAC256Raw(b *testing.B) {
	c2s, _ := benchKeys()
	seal, open := hmac.New(sha256.New, c2s[:]), hmac.New(sha256.New, c2s[:])
	msg := make([]byte, channel.HeaderSize+benchBodySize)
	var sealed, opened [protocol.MACSize]byte
	twice := func() bool {
		seal.Reset()
		seal.Write(msg)
		seal.Sum(sealed[:0])
		open.Reset()
		open.Write(msg)
		return hmac.Equal(open.Sum(opened[:0]), sealed[:])
	}
	twice()
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	for b.Loop() {
		if !twice() {
			b.Fatal("channel: HMAC mismatch")
		}
	}
}

// BenchmarkReaderWriter sends 256-byte Send frames through a Writer and a
// Reader: over a bytes.Buffer (one goroutine, no copying between them) and
// over a net.Pipe (the reader in its own goroutine).
func BenchmarkReaderWriter(b *testing.B) {
	b.Run("buffer", benchBuffer)
	b.Run("pipe", benchPipe)
}

func benchBuffer(b *testing.B) {
	s, o := benchPair()
	var stream bytes.Buffer
	w, r := channel.NewWriter(&stream, s), channel.NewReader(&stream, o)
	body := make([]byte, benchBodySize)
	roundTrip := func() error {
		if err := w.Write(channel.TypeSend, body); err != nil {
			return err
		}
		f, err := r.Read()
		if err == nil && len(f.Body) != benchBodySize {
			err = errors.New("channel: frame changed on the way")
		}
		return err
	}
	if err := roundTrip(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	for b.Loop() {
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPipe(b *testing.B) {
	s, o := benchPair()
	cn, sn := net.Pipe()
	w, r := channel.NewWriter(cn, s), channel.NewReader(sn, o)
	type result struct {
		frames int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for {
			if _, err := r.Read(); err != nil {
				if !errors.Is(err, io.EOF) {
					res.err = err
				}
				done <- res
				return
			}
			res.frames++
		}
	}()
	body := make([]byte, benchBodySize)
	sent := 0
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(channel.TypeSend, body); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	cn.Close()
	res := <-done
	sn.Close()
	if res.err != nil || res.frames != sent {
		b.Fatalf("reader got %d of %d frames: %v", res.frames, sent, res.err)
	}
}
