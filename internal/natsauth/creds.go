package natsauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/commsec/communicator/internal/atomicfile"
)

// Creds holds one nkey user per role: the seed that authenticates it.
// Seeds are secrets; Wipe clears them.
type Creds struct {
	seeds map[Role][]byte
	pubs  map[Role]string
}

// NewCreds makes a fresh nkey user for every role.
func NewCreds() (*Creds, error) {
	c := &Creds{seeds: map[Role][]byte{}, pubs: map[Role]string{}}
	for _, r := range Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		if err := c.add(r, kp); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Creds) add(r Role, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("natsauth: %s: %w", r, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("natsauth: %s: %w", r, err)
	}
	c.seeds[r], c.pubs[r] = seed, pub
	return nil
}

// Users lists the public side of the users, for Config.
func (c *Creds) Users() []User {
	out := make([]User, 0, len(c.pubs))
	for _, r := range Roles {
		if pub, ok := c.pubs[r]; ok {
			out = append(out, User{Role: r, PubKey: pub})
		}
	}
	return out
}

// Option authenticates a NATS connection as role r, with r's inbox prefix.
func (c *Creds) Option(r Role) nats.Option {
	seed := c.seeds[r]
	return func(o *nats.Options) error {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return fmt.Errorf("natsauth: %s: %w", r, err)
		}
		pub, _ := kp.PublicKey()
		sign := func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }
		if err := nats.Nkey(pub, sign)(o); err != nil {
			return err
		}
		return nats.CustomInboxPrefix(InboxPrefix(r))(o)
	}
}

// SeedFile is where a role's seed lives in a credentials directory.
func SeedFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".nk") }

// Write stores every seed in dir (0700), one file per role (0600).
func (c *Creds) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	for _, r := range Roles {
		if err := atomicfile.Write(SeedFile(dir, r), append(append([]byte(nil), c.seeds[r]...), '\n'), 0o600); err != nil {
			return fmt.Errorf("natsauth: %w", err)
		}
	}
	return nil
}

// ErrNoCreds means a directory holds no credentials yet.
var ErrNoCreds = errors.New("natsauth: no credentials")

// ReadCreds loads the seeds of every role from dir. A seed file others
// may read, or one that is not a user seed, is refused.
func ReadCreds(dir string) (*Creds, error) {
	c := &Creds{seeds: map[Role][]byte{}, pubs: map[Role]string{}}
	for i, r := range Roles {
		path := SeedFile(dir, r)
		st, err := os.Stat(path)
		if i == 0 && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s", ErrNoCreds, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("natsauth: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
		clear(data)
		if err != nil || !strings.HasPrefix(mustPub(kp), "U") {
			return nil, fmt.Errorf("natsauth: %s is not an nkey user seed", path)
		}
		if err := c.add(r, kp); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func mustPub(kp nkeys.KeyPair) string {
	if kp == nil {
		return ""
	}
	pub, _ := kp.PublicKey()
	return pub
}

// LoadOrCreate reads the credentials in dir, creating them on the first
// run; created reports a first run.
func LoadOrCreate(dir string) (c *Creds, created bool, err error) {
	c, err = ReadCreds(dir)
	if !errors.Is(err, ErrNoCreds) {
		return c, false, err
	}
	if c, err = NewCreds(); err != nil {
		return nil, false, err
	}
	return c, true, c.Write(dir)
}

// Wipe clears the seeds (best effort: Go may have copied them).
func (c *Creds) Wipe() {
	for _, s := range c.seeds {
		clear(s)
	}
}
