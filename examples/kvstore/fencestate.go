package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/handover-dev/handover/internal/fence"
)

const fenceFile = "fence.json"

// fenceState is what fence.json holds: fenced, epoch and, while retired,
// the successor. Files written before retirement existed read unchanged.
type fenceState = fence.State

// loadFence reads dir's fence state; a missing file is the zero state
// (unfenced, epoch 0).
func loadFence(dir string) (fenceState, error) {
	b, err := os.ReadFile(filepath.Join(dir, fenceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fenceState{}, nil
	}
	if err != nil {
		return fenceState{}, fmt.Errorf("reading fence state: %w", err)
	}
	var st fenceState
	if err := json.Unmarshal(b, &st); err != nil {
		return fenceState{}, fmt.Errorf("reading fence state %s: %w", filepath.Join(dir, fenceFile), err)
	}
	return st, nil
}

// saveFence replaces dir's fence state atomically and durably: a crash
// leaves either the old or the new file, never a torn one.
func saveFence(dir string, st fenceState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding fence state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, fenceFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving fence state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, fenceFile))
	}
	if err != nil {
		return fmt.Errorf("saving fence state: %w", err)
	}
	return syncDirectory(dir)
}

func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// startState is the fence state to start with (fence.StartState, see the
// package comment). It reports whether that differs from what is persisted.
func startState(persisted fenceState, epoch int64, startFenced bool) (fenceState, bool) {
	st := fence.StartState(persisted, epoch, startFenced)
	return st, st != persisted
}
