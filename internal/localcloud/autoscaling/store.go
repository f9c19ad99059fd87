package autoscaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFile is the one file the service keeps under DataDir.
const stateFile = "autoscaling.json"

// formatVersion guards against reading a file written by an incompatible
// version of this package.
const formatVersion = 1

type fileFormat struct {
	Version int    `json:"version"`
	State   *state `json:"state"`
}

// loadState reads the saved state, or returns an empty one when dir is ""
// or holds none yet.
func loadState(dir string) (*state, error) {
	if dir == "" {
		return newState(), nil
	}
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading auto scaling state: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("reading auto scaling state %s: %w (move the file away to start empty)", path, err)
	}
	if f.Version != formatVersion {
		return nil, fmt.Errorf("auto scaling state %s has format version %d; this build reads %d (move the file away to start empty)", path, f.Version, formatVersion)
	}
	st := f.State
	if st == nil {
		st = newState()
	}
	if st.Groups == nil {
		st.Groups = map[string]*group{}
	}
	for _, g := range st.Groups {
		if g.Hooks == nil {
			g.Hooks = map[string]*hook{}
		}
		if g.Instances == nil {
			g.Instances = map[string]*instance{}
		}
	}
	return st, nil
}

// saveState writes st atomically: a reader (or a crash) sees either the old
// file or the new one, never a mix.
func saveState(dir string, st *state) error {
	if dir == "" {
		return nil
	}
	b, err := json.Marshal(fileFormat{Version: formatVersion, State: st})
	if err != nil {
		return fmt.Errorf("encoding auto scaling state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
