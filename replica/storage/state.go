package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"

	"memstore/replica/storage/vfs"
)

// StateFile is the name of the state file in the data dir.
const StateFile = "state"

// State is the protocol state that must survive a crash besides the log.
type State struct {
	// Epoch is the highest epoch the node promised.
	Epoch uint64 `json:"epoch"`
}

// SaveState replaces the state file atomically: write a temporary file,
// fsync it, rename it over the old one, fsync the folder.
func SaveState(fsys vfs.FS, dir string, s State) error {
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("storage: encode state: %w", err)
	}
	data := fmt.Appendf(body, "\n%08x\n", crc32.Checksum(body, castagnoli))
	if err := vfs.WriteFileAtomic(fsys, dir, StateFile, data); err != nil {
		return fmt.Errorf("storage: save state: %w", err)
	}
	return nil
}

// LoadState reads the state file; a missing file is the zero State, a
// damaged one an ErrCorrupt.
func LoadState(fsys vfs.FS, dir string) (State, error) {
	path := filepath.Join(dir, StateFile)
	f, err := vfs.Open(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("storage: open state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return State{}, fmt.Errorf("storage: read state: %w", err)
	}
	body, sum, ok := bytes.Cut(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	var want uint32
	if ok {
		_, err = fmt.Sscanf(string(sum), "%08x", &want)
	}
	if !ok || err != nil || crc32.Checksum(body, castagnoli) != want {
		return State{}, fmt.Errorf("%w: %s fails its checksum", ErrCorrupt, path)
	}
	var s State
	if err := json.Unmarshal(body, &s); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return s, nil
}
