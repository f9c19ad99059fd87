package sqs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFile is the file under DataDir holding every queue and message.
const stateFile = "sqs.json"

const stateVersion = 1

type savedState struct {
	Version int      `json:"version"`
	Queues  []*queue `json:"queues"`
}

// load reads the saved state, if any.
func (s *Service) load() error {
	path := filepath.Join(s.cfg.DataDir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading sqs state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("loading sqs state from %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("loading sqs state from %s: version %d, want %d", path, st.Version, stateVersion)
	}
	for _, q := range st.Queues {
		if q == nil || q.Name == "" {
			continue
		}
		q.notify = make(chan struct{})
		s.queues[q.Name] = q
	}
	return nil
}

// saveLocked writes the whole state atomically: a reader (or a crash)
// sees the old file or the new one, never a mix.
func (s *Service) saveLocked() error {
	st := savedState{Version: stateVersion}
	for _, n := range sortedKeys(s.queues) {
		st.Queues = append(st.Queues, s.queues[n])
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding sqs state: %w", err)
	}
	return writeFileAtomic(filepath.Join(s.cfg.DataDir, stateFile), b)
}

// writeFileAtomic replaces path with data through a synced temporary file
// and a rename.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
