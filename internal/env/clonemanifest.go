package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/manifest"
)

// ManifestReader reads the content manifest of a database's data
// directory from the service that holds it: FenceManifests, over the
// fence route GET /admin/manifest.
type ManifestReader interface {
	// Manifest returns the manifest of the data directory the service at
	// t serves. Safe to repeat; it changes nothing. A service without the
	// route fails with an error for which fence.IsNotImplemented is true.
	Manifest(ctx context.Context, t handover.Target) (manifest.Manifest, error)
}

// FenceManifests is ManifestReader over a fence.Client.
type FenceManifests struct{ Client *fence.Client }

// Manifest implements ManifestReader.
func (f FenceManifests) Manifest(ctx context.Context, t handover.Target) (manifest.Manifest, error) {
	return f.Client.Manifest(ctx, t.Addr)
}

// manifestRead is one database's manifest read at the quiesce point.
type manifestRead struct {
	db, instance string
	m            manifest.Manifest
	err          error
	end          time.Time // when the read returned
}

// manifestsToRead lists the fenced databases whose manifest the clone
// still has to record: none when the plan reads none.
func (r *Runner) manifestsToRead(op *ledger.EnvOp, rec *cloneRecord) []manifestRead {
	if !rec.Plan.Manifests {
		return nil
	}
	var out []manifestRead
	for _, it := range op.Cloning.Items {
		if it.Kind != itemFence || !it.Done || hasManifest(op, it.Name) {
			continue
		}
		out = append(out, manifestRead{db: it.Name, instance: it.ID})
	}
	return out
}

func hasManifest(op *ledger.EnvOp, db string) bool {
	for _, m := range op.Cloning.Manifests {
		if m.Database == db {
			return true
		}
	}
	return false
}

// readManifests starts reading every manifest of reads at once and
// returns a wait for them: the clone starts its snapshots meanwhile, so
// the reads add to SRC's write pause only what they take beyond the
// snapshot starts. Each database is fenced (its writes stopped and
// flushed), so what is read is the data its snapshot holds.
func (r *Runner) readManifests(ctx context.Context, reads []manifestRead) func() []manifestRead {
	if len(reads) == 0 {
		return func() []manifestRead { return nil }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = parallel(len(reads), func(i int) error {
			rd := &reads[i]
			if r.Manifests == nil {
				rd.err = errors.New("this runner has no manifest reader")
				return nil
			}
			addr, err := r.Clone.InstanceAddr(ctx, rd.instance)
			if err != nil {
				rd.err = fmt.Errorf("finding the address of instance %s: %w", rd.instance, err)
				return nil
			}
			rd.m, rd.err = r.Manifests.Manifest(ctx, handover.Target{Instance: rd.instance, Addr: addr})
			rd.end = r.clk.Now()
			return nil
		})
	}()
	return func() []manifestRead { <-done; return reads }
}

// recordManifests keeps what was read on the clone. A manifest that could
// not be read is recorded with why: the clone goes on (its pause must not
// grow for a check), and verify reports that database's volume unchecked.
func (r *Runner) recordManifests(op *ledger.EnvOp, reads []manifestRead, start time.Time) {
	if len(reads) == 0 {
		return
	}
	failed := 0
	last := start
	for _, rd := range reads {
		if rd.end.After(last) {
			last = rd.end
		}
		m := ledger.EnvManifest{Database: rd.db}
		if rd.err != nil {
			failed++
			m.Error = rd.err.Error()
			r.log.Warn("reading a database's manifest at the quiesce point", "env-op-id", op.ID, "database", rd.db, "err", rd.err)
		} else {
			m.Hash, m.Entries = rd.m.Hash(), rd.m.Entries
			m.Files, m.Bytes = rd.m.Files()
		}
		op.Cloning.Manifests = append(op.Cloning.Manifests, m)
	}
	// The reads' own time, from the snapshots' start to the last read's
	// return: what they add to the pause is what exceeds the snapshots'.
	msg := fmt.Sprintf("read %s in %s", plural(len(reads), "manifest"), last.Sub(start).Round(time.Millisecond))
	if failed > 0 {
		msg += fmt.Sprintf(" (%d could not be read; verify reports those volumes unchecked)", failed)
	}
	r.say("%s", msg)
}

// recordObjects keeps what a bucket copy left in DST's bucket (replacing
// an earlier pass's record): verify compares DST's bucket with it, not
// with SRC's, which has moved on since.
func recordObjects(op *ledger.EnvOp, c CopyPlan, sums map[string]string) {
	rec := ledger.EnvObjects{Bucket: c.To, From: c.From, Count: len(sums), Digest: ObjectsDigest(sums)}
	if len(sums) <= ledger.MaxRecordedObjects {
		rec.Sums = sums
	} else {
		rec.Partial = true
	}
	op.Cloning.Objects = slices.DeleteFunc(op.Cloning.Objects, func(o ledger.EnvObjects) bool { return o.Bucket == c.To })
	op.Cloning.Objects = append(op.Cloning.Objects, rec)
}

// ObjectsDigest is "sha256:<hex>" over one line per key, sorted, with its
// checksum: equal digests mean the same keys with the same contents.
func ObjectsDigest(sums map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(h, "%s %s\n", strconv.Quote(k), sums[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
