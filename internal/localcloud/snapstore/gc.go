package snapstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// GC removes chunks that no manifest references, and leftover temporary
// files. It waits for Creates and Restores in flight and blocks new ones
// while it runs. A manifest that cannot be read aborts GC before anything is
// removed, since its chunks cannot be known. Safe to repeat; cancelling ctx
// stops it between shard directories with what was removed so far counted.
func (s *Store) GC(ctx context.Context) (removedChunks int, freedBytes int64, err error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	ids, err := s.listManifests()
	if err != nil {
		return 0, 0, fmt.Errorf("collecting garbage: listing manifests: %w", err)
	}
	live := make(map[string]struct{})
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("collecting garbage: %w", err)
		}
		m, err := s.Manifest(id)
		if err != nil {
			return 0, 0, fmt.Errorf("collecting garbage: %w", err)
		}
		for _, e := range m.Entries {
			for _, c := range e.Chunks {
				live[c.Hash] = struct{}{}
			}
		}
	}
	if err := s.cleanTmp(); err != nil {
		return 0, 0, fmt.Errorf("collecting garbage: cleaning temporary files: %w", err)
	}
	shards, err := readDirNames(s.chunksDir)
	if err != nil {
		return 0, 0, fmt.Errorf("collecting garbage: %w", err)
	}
	for _, shard := range shards {
		if err := ctx.Err(); err != nil {
			return removedChunks, freedBytes, fmt.Errorf("collecting garbage: %w", err)
		}
		dir := filepath.Join(s.chunksDir, shard)
		names, err := readDirNames(dir)
		if err != nil {
			return removedChunks, freedBytes, fmt.Errorf("collecting garbage in %s: %w", dir, err)
		}
		removed := false
		for _, n := range names {
			if _, ok := live[shard+n]; ok {
				continue
			}
			p := filepath.Join(dir, n)
			fi, err := os.Lstat(p)
			if err == nil {
				err = os.Remove(p)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removedChunks, freedBytes, fmt.Errorf("collecting garbage: removing chunk %s: %w", shard+n, err)
			}
			if err == nil {
				removedChunks++
				freedBytes += fi.Size()
				removed = true
			}
		}
		if removed {
			if err := syncDir(dir); err != nil {
				return removedChunks, freedBytes, fmt.Errorf("collecting garbage: %w", err)
			}
		}
	}
	s.logger.Info("garbage collected", "manifests", len(ids), "removed-chunks", removedChunks, "freed-bytes", freedBytes)
	return removedChunks, freedBytes, nil
}
