// Package vectors reads, writes and generates the protocol's test vector
// files (protocol/testdata/vectors). The format is for people and other
// implementations as much as for our tests:
//
//	# free text explaining the case
//	kind: frame
//	expect: bad_mac
//	key: 6a1f...
//	frame: 0000002d10...
//
// One "name: value" per line; '#' starts a comment line; a name may repeat
// (frame: several frames in order). Byte strings are lowercase hex; other
// values are decimal numbers or words. "expect" is "ok" or the stable name
// of the error the case must produce (protocol.Error.Name, or peer_<code>
// for an error reported by the peer).
package vectors

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Field is one line of a vector.
type Field struct{ Name, Value string }

// Vector is one test case.
type Vector struct {
	File    string // file name, set by the generator and by Parse's caller
	Comment []string
	Fields  []Field
}

func (v *Vector) add(name string, value any) {
	var s string
	switch x := value.(type) {
	case []byte:
		s = hex.EncodeToString(x)
	case string:
		s = x
	default:
		s = fmt.Sprint(x)
	}
	v.Fields = append(v.Fields, Field{name, s})
}

// Get returns the first value of name, or "".
func (v *Vector) Get(name string) string {
	for _, f := range v.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Has reports whether the vector has a field name.
func (v *Vector) Has(name string) bool {
	for _, f := range v.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Bytes returns the hex-decoded first value of name.
func (v *Vector) Bytes(name string) ([]byte, error) {
	b, err := hex.DecodeString(v.Get(name))
	if err != nil {
		return nil, fmt.Errorf("%s: field %s: %w", v.File, name, err)
	}
	return b, nil
}

// AllBytes returns every value of name, hex-decoded, in order.
func (v *Vector) AllBytes(name string) ([][]byte, error) {
	var out [][]byte
	for _, f := range v.Fields {
		if f.Name != name {
			continue
		}
		b, err := hex.DecodeString(f.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: field %s: %w", v.File, name, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Uint returns the decimal value of name.
func (v *Vector) Uint(name string) (uint64, error) {
	n, err := strconv.ParseUint(v.Get(name), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: field %s: %w", v.File, name, err)
	}
	return n, nil
}

// Format returns the file form.
func Format(v *Vector) []byte {
	var b bytes.Buffer
	for _, c := range v.Comment {
		fmt.Fprintf(&b, "# %s\n", c)
	}
	for _, f := range v.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	return b.Bytes()
}

// Parse reads the file form.
func Parse(name string, data []byte) (*Vector, error) {
	v := &Vector{File: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			v.Comment = append(v.Comment, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		k, val, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"name: value\"", name, n)
		}
		v.Fields = append(v.Fields, Field{k, val})
	}
	if v.Get("kind") == "" || v.Get("expect") == "" {
		return nil, fmt.Errorf("%s: kind and expect are required", name)
	}
	return v, sc.Err()
}
