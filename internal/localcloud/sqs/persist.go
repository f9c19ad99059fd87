package sqs

import (
	"fmt"
	"path/filepath"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
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
	var st savedState
	found, err := statefile.ReadJSON(path, &st)
	if err != nil {
		return fmt.Errorf("loading sqs state: %w", err)
	}
	if !found {
		return nil
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
	return statefile.WriteJSON(filepath.Join(s.cfg.DataDir, stateFile), st)
}
