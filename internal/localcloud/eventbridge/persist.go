package eventbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// stateFile is the file under DataDir holding every rule and target.
const stateFile = "eventbridge.json"

const stateVersion = 1

type savedState struct {
	Version int     `json:"version"`
	Rules   []*rule `json:"rules"`
}

// load reads the saved rules, if any, and compiles their patterns.
func (s *Service) load() error {
	path := filepath.Join(s.cfg.DataDir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading eventbridge state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("loading eventbridge state from %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("loading eventbridge state from %s: version %d, want %d", path, st.Version, stateVersion)
	}
	for _, r := range st.Rules {
		if r == nil || r.Name == "" {
			continue
		}
		if r.EventPattern != "" {
			if r.pattern, err = ParsePattern(r.EventPattern); err != nil {
				return fmt.Errorf("loading rule %s from %s: %w", r.Name, path, err)
			}
		}
		s.rules[r.Name] = r
	}
	return nil
}

// saveLocked writes every rule atomically: a reader (or a crash) sees the
// old file or the new one, never a mix.
func (s *Service) saveLocked() error {
	st := savedState{Version: stateVersion}
	for _, r := range s.rules {
		st.Rules = append(st.Rules, r)
	}
	sort.Slice(st.Rules, func(i, j int) bool { return st.Rules[i].Name < st.Rules[j].Name })
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding eventbridge state: %w", err)
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
