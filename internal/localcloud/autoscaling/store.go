package autoscaling

import (
	"fmt"
	"path/filepath"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
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
	var f fileFormat
	found, err := statefile.ReadJSON(path, &f)
	if err != nil && found { // there but corrupt
		return nil, fmt.Errorf("reading auto scaling state: %w (move the file away to start empty)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading auto scaling state: %w", err)
	}
	if !found {
		return newState(), nil
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
	if st.LaunchConfigurations == nil {
		st.LaunchConfigurations = map[string]*launchConfiguration{}
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
	if err := statefile.WriteJSON(filepath.Join(dir, stateFile), fileFormat{Version: formatVersion, State: st}); err != nil {
		return fmt.Errorf("saving auto scaling state: %w", err)
	}
	return nil
}
