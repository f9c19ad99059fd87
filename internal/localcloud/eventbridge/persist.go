package eventbridge

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
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
	var st savedState
	found, err := statefile.ReadJSON(path, &st)
	if err != nil {
		return fmt.Errorf("loading eventbridge state: %w", err)
	}
	if !found {
		return nil
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
	return statefile.WriteJSON(filepath.Join(s.cfg.DataDir, stateFile), st)
}
