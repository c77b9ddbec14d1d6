package clientstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/commsec/communicator/internal/atomicfile"
)

// Store keeps the encoded state. Load returns (nil, nil) when nothing has
// been saved yet. Save must be atomic and durable: once it returns, a crash
// leaves the new bytes; a crash during it leaves the old or the new bytes,
// never a mix.
type Store interface {
	Load() ([]byte, error)
	Save(data []byte) error
}

var (
	_ Store = (*FileStore)(nil)
	_ Store = (*MemStore)(nil)
)

// FileStore keeps the state in one file, replaced atomically (temp file,
// fsync, rename, fsync of the directory), mode 0600: it holds group keys.
type FileStore struct{ Path string }

// Load reads the file; a missing file is empty state.
func (f *FileStore) Load() ([]byte, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clientstate: %w", err)
	}
	return data, nil
}

// Save replaces the file.
func (f *FileStore) Save(data []byte) error {
	if err := atomicfile.Write(f.Path, data, 0o600); err != nil {
		return fmt.Errorf("clientstate: %w", err)
	}
	return nil
}

// MemStore keeps the state in memory, for clients without storage and for
// tests that simulate a restart by loading a new State from the same store.
type MemStore struct {
	mu    sync.Mutex
	data  []byte
	Saves int // number of successful saves
}

// Load returns a copy of the last saved bytes.
func (m *MemStore) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.data...), nil
}

// Save keeps a copy of data.
func (m *MemStore) Save(data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = append(m.data[:0], data...)
	m.Saves++
	return nil
}
