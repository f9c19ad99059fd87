package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Errors of a publish that bad input causes. Each is terminal: nothing was
// changed, and repeating the same call gets the same answer.
var (
	// ErrBadDir: DIR is missing, not a directory, or empty.
	ErrBadDir = errors.New("bad release directory")
	// ErrNoVolume: no release volume of the channel is attached here.
	ErrNoVolume = errors.New("no release volume")
	// ErrPublished: a release of that name is already published.
	ErrPublished = errors.New("release already published")
)

// RunningError says another publish (or rollback) of the channel holds its
// lease. It names the holder. Retry once it is done.
type RunningError struct {
	Channel string
	Holder  string
	Expires time.Time
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("another publish of channel %s is running: %s (its lease runs to %s unless renewed); wait for it to finish, or for the lease to lapse if it died",
		e.Channel, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

// IsRunning reports whether err is (or wraps) a RunningError.
func IsRunning(err error) bool {
	var r *RunningError
	return errors.As(err, &r)
}

// Freezer quiesces the filesystem holding a release volume for its
// snapshot. Freeze is called after the sync is flushed; thaw once the
// snapshot is pending (EBS takes the point in time then).
type Freezer interface {
	Freeze(ctx context.Context, dir string) (thaw func() error, err error)
}

// Event is one progress report of a long operation.
type Event struct {
	Phase   string `json:"phase"`
	Message string `json:"message"`
}

// Publisher publishes releases. Cloud, Ledger and Locate are required.
type Publisher struct {
	Cloud  Cloud
	Ledger Ledger
	// Locate returns the directory where the release volume's files are on
	// this machine: on the local cloud the attached volume's link, on AWS
	// its mount point.
	Locate  func(v handover.Volume) (string, error)
	Freezer Freezer // nil: the flush is the only quiescing
	Clock   clock.Clock
	// Sleep waits d or until ctx ends (nil: a real timer).
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	// Holder names this publish in the channel's lease, for the message a
	// second publish gets.
	Holder   string
	LeaseTTL time.Duration
	// Poll is how often the snapshot's state is read; SnapshotTimeout
	// bounds the wait.
	Poll            time.Duration
	SnapshotTimeout time.Duration
	// Progress, if set, is told each phase.
	Progress func(Event)
	// Rollout, when set, converges the fleet after the release is
	// recorded, still under the channel's lease, and rolls back if that
	// fails: Publish then returns once every in-service instance of the
	// channel serves the release.
	Rollout *Rollout
	// Keep, when positive, is retention after a successful publish: the
	// snapshots of the Keep most recent releases (and of any in use) stay.
	Keep        int
	RetainCloud RetainCloud
}

// PublishSpec is one publish.
type PublishSpec struct {
	Dir, Channel, Name string
	// Instance is the instance the release volume is attached to: this
	// one.
	Instance string
}

// PublishResult is what a publish did.
type PublishResult struct {
	Release  *ledger.Release `json:"release"`
	Volume   string          `json:"volume"`
	Sync     SyncStats       `json:"sync"`
	Previous string          `json:"previous,omitempty"` // the channel's latest before
	// Converge is the rollout to the fleet, when Publisher.Rollout is set.
	Converge *ConvergeResult `json:"converge,omitempty"`
	// Retention is what retention kept and deleted, when Keep is set.
	Retention []Retained    `json:"retention,omitempty"`
	Took      time.Duration `json:"took"`
}

func (p *Publisher) defaults() {
	if p.Clock == nil {
		p.Clock = clock.Real{}
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.LeaseTTL == 0 {
		p.LeaseTTL = 30 * time.Second
	}
	if p.Poll == 0 {
		p.Poll = time.Second
	}
	if p.SnapshotTimeout == 0 {
		p.SnapshotTimeout = time.Hour
	}
	if p.Holder == "" {
		host, _ := os.Hostname()
		p.Holder = fmt.Sprintf("publish on %s pid %d", host, os.Getpid())
	}
}

func (p *Publisher) progress(phase, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.Log.Info(msg, "phase", phase)
	if p.Progress != nil {
		p.Progress(Event{Phase: phase, Message: msg})
	}
}

// CheckDir refuses a release directory that cannot be published.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist: give the directory holding the release's files", ErrBadDir, dir)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrBadDir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory: give the directory holding the release's files", ErrBadDir, dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadDir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(2)
	if errors.Is(err, io.EOF) || err == nil && len(names) == 0 {
		return fmt.Errorf("%w: %s is empty: a release with no files would leave every instance serving nothing (publish the directory your build wrote)", ErrBadDir, dir)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadDir, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, MarkerFile)); err == nil {
		return fmt.Errorf("%w: %s holds %s, the name handover keeps for the release marker: rename it", ErrBadDir, dir, MarkerFile)
	}
	return nil
}

// FindVolume returns the channel's release volume attached to instance.
func FindVolume(ctx context.Context, c Cloud, channel, instance string) (handover.Volume, error) {
	vols, err := c.FindVolumes(ctx, map[string]string{TagVolume: channel})
	if err != nil {
		return handover.Volume{}, fmt.Errorf("looking for the release volume of channel %s: %w", channel, err)
	}
	var elsewhere []string
	for _, v := range vols {
		if v.AttachedTo == instance && v.State == handover.VolumeInUse {
			return v, nil
		}
		elsewhere = append(elsewhere, fmt.Sprintf("%s (%s, attached to %q)", v.ID, v.State, v.AttachedTo))
	}
	if len(elsewhere) > 0 {
		return handover.Volume{}, fmt.Errorf("%w: channel %s's release volume is not attached to this instance %s: %v; publish where it is attached, or attach it here",
			ErrNoVolume, channel, instance, elsewhere)
	}
	return handover.Volume{}, fmt.Errorf("%w: channel %s has no release volume (no volume tagged %s=%s); make one here with `handover release init --channel %s`",
		ErrNoVolume, channel, TagVolume, channel, channel)
}

// Publish syncs spec.Dir onto the channel's release volume, verifies it,
// snapshots it and records the release as the channel's latest. It holds
// the channel's lease throughout: a second publish of the channel gets a
// *RunningError. A publish that died is resumed by publishing the same name
// again: the sync is repeated, a snapshot already taken of the same tree is
// found by its tags, and the record is completed.
func (p *Publisher) Publish(ctx context.Context, spec PublishSpec) (PublishResult, error) {
	p.defaults()
	start := p.Clock.Now()
	var res PublishResult
	if err := ledger.ValidReleaseName("--channel", spec.Channel); err != nil {
		return res, err
	}
	if err := ledger.ValidReleaseName("--name", spec.Name); err != nil {
		return res, err
	}
	if err := CheckDir(spec.Dir); err != nil {
		return res, err
	}
	// Refused before the lease: a release of that name is never published
	// twice, whoever holds the lease.
	id := ledger.ReleaseID(spec.Channel, spec.Name)
	if r, err := p.Ledger.GetRelease(ctx, id); err == nil && r.State != ledger.ReleasePublishing && r.State != ledger.ReleaseFailed {
		return res, fmt.Errorf("%w: %s of channel %s is %s (snapshot %s, manifest %s): publish under a new --name, or roll back to it with `handover release rollback --channel %s --to %s`",
			ErrPublished, spec.Name, spec.Channel, r.State, r.SnapshotID, r.ManifestHash, spec.Channel, spec.Name)
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return res, fmt.Errorf("reading release %s: %w", id, err)
	}

	ctx, done, err := holdLeaseForPublish(ctx, p.Ledger, p.Clock, p.Log, spec.Channel, p.Holder+" ("+spec.Name+")", p.LeaseTTL)
	if err != nil {
		return res, err
	}
	defer done()

	vol, err := FindVolume(ctx, p.Cloud, spec.Channel, spec.Instance)
	if err != nil {
		return res, err
	}
	res.Volume = vol.ID
	dir, err := p.Locate(vol)
	if err != nil {
		return res, fmt.Errorf("finding release volume %s's files on this machine: %w", vol.ID, err)
	}

	rel, err := p.record(ctx, spec, vol.ID)
	if err != nil {
		return res, err
	}
	if err := p.publish(ctx, spec, dir, vol, rel, &res); err != nil {
		p.fail(rel, err)
		return res, err
	}
	res.Release = rel
	if p.Rollout != nil {
		if p.Rollout.Progress == nil {
			p.Rollout.Progress = p.Progress
		}
		conv, err := p.Rollout.Deliver(ctx, p.Ledger, p.Clock, rel, res.Previous)
		res.Converge = &conv
		if err != nil {
			res.Took = p.Clock.Now().Sub(start)
			return res, err
		}
	}
	if p.Keep > 0 && p.RetainCloud != nil {
		kept, err := Retain(ctx, p.RetainCloud, p.Ledger, spec.Channel, p.Keep)
		res.Retention = kept
		if err != nil {
			// The release is out; retention is tidying, which the next
			// publish repeats.
			p.Log.Warn("retention failed", "channel", spec.Channel, "err", err)
		}
		for _, k := range kept {
			if k.Deleted {
				p.progress("retention", "deleted snapshot %s of release %s", k.Snapshot, k.Release)
			}
		}
	}
	res.Took = p.Clock.Now().Sub(start)
	return res, nil
}

// record creates the release record, or takes over one a dead publish of
// the same name left.
func (p *Publisher) record(ctx context.Context, spec PublishSpec, volume string) (*ledger.Release, error) {
	now := p.Clock.Now()
	rel := &ledger.Release{ID: ledger.ReleaseID(spec.Channel, spec.Name), Channel: spec.Channel, Name: spec.Name,
		State: ledger.ReleasePublishing, SourceVolume: volume, Publisher: p.Holder, CreatedAt: now}
	err := p.Ledger.CreateRelease(ctx, rel)
	if !errors.Is(err, ledger.ErrExists) {
		if err != nil {
			return nil, fmt.Errorf("recording release %s: %w", rel.ID, err)
		}
		return rel, nil
	}
	old, err := p.Ledger.GetRelease(ctx, rel.ID)
	if err != nil {
		return nil, fmt.Errorf("reading release %s: %w", rel.ID, err)
	}
	if old.State != ledger.ReleasePublishing && old.State != ledger.ReleaseFailed {
		return nil, fmt.Errorf("%w: %s of channel %s was published meanwhile", ErrPublished, spec.Name, spec.Channel)
	}
	p.progress("resume", "taking over release %s, left %s by %s", rel.ID, old.State, old.Publisher)
	old.State, old.Error, old.SourceVolume, old.Publisher = ledger.ReleasePublishing, "", volume, p.Holder
	if err := p.Ledger.SaveRelease(ctx, old); err != nil {
		return nil, fmt.Errorf("taking over release %s: %w", rel.ID, err)
	}
	return old, nil
}

func (p *Publisher) publish(ctx context.Context, spec PublishSpec, dir string, vol handover.Volume, rel *ledger.Release, res *PublishResult) error {
	p.progress("manifest", "reading %s", spec.Dir)
	want, err := BuildManifest(spec.Dir)
	if err != nil {
		return err
	}
	files, bytes := want.Files()
	hash := want.Hash()
	p.progress("sync", "syncing %d files (%s) into release volume %s at %s", files, humanBytes(bytes), vol.ID, dir)
	st, err := Sync(spec.Dir, dir, want)
	if err != nil {
		return fmt.Errorf("syncing %s into release volume %s: %w", spec.Dir, vol.ID, err)
	}
	res.Sync = st
	p.progress("verify", "synced: %d files copied (%s), %d links made, %d paths removed, %d unchanged; verifying", st.Copied, humanBytes(st.CopiedBytes), st.Linked, st.Removed, st.Unchanged)
	got, err := BuildManifest(dir)
	if err != nil {
		return fmt.Errorf("verifying release volume %s: %w", vol.ID, err)
	}
	if got.Hash() != hash {
		return fmt.Errorf("verifying release volume %s: its tree does not match %s (%s); did %s change during the publish? publish again", vol.ID, spec.Dir, want.Diff(got), spec.Dir)
	}
	if err := writeMarker(dir, Marker{Channel: spec.Channel, Name: spec.Name, ManifestHash: hash, PublishedAt: p.Clock.Now().UTC()}); err != nil {
		return fmt.Errorf("writing the release marker on volume %s: %w", vol.ID, err)
	}
	if err := syncFS(dir); err != nil {
		return fmt.Errorf("flushing release volume %s: %w", vol.ID, err)
	}
	rel.ManifestHash, rel.Files, rel.Bytes = hash, files, bytes
	if err := p.Ledger.SaveRelease(ctx, rel); err != nil {
		return fmt.Errorf("recording release %s's manifest: %w", rel.ID, err)
	}

	snap, err := p.snapshot(ctx, dir, vol, rel)
	if err != nil {
		return err
	}
	// The snapshot first, then latest, then Published: a publish that dies
	// in between leaves a record still Publishing, which publishing the
	// same name again takes over, and a latest whose record names its
	// snapshot, which the release controller can roll out.
	rel.SnapshotID = snap
	if err := p.Ledger.SaveRelease(ctx, rel); err != nil {
		return fmt.Errorf("recording release %s's snapshot: %w", rel.ID, err)
	}
	prev, err := SetLatest(ctx, p.Ledger, p.Clock, rel)
	if err != nil {
		return err
	}
	rel.State, rel.PublishedAt = ledger.ReleasePublished, p.Clock.Now()
	if err := p.Ledger.SaveRelease(ctx, rel); err != nil {
		return fmt.Errorf("recording release %s as published: %w", rel.ID, err)
	}
	res.Previous = prev
	p.progress("recorded", "release %s is channel %s's latest (was %q)", spec.Name, spec.Channel, prev)
	return nil
}

// snapshot takes (or finds) the snapshot of the verified volume and waits
// for it to complete.
func (p *Publisher) snapshot(ctx context.Context, dir string, vol handover.Volume, rel *ledger.Release) (string, error) {
	tags := map[string]string{TagManaged: "true", handover.TagPurpose: PurposeRelease,
		TagChannel: rel.Channel, TagRelease: rel.Name, TagManifest: rel.ManifestHash}
	found, err := p.Cloud.FindSnapshots(ctx, tags)
	if err != nil {
		return "", fmt.Errorf("looking for a snapshot of release %s: %w", rel.ID, err)
	}
	var snap handover.Snapshot
	for _, s := range found {
		if s.State != handover.SnapshotError && s.VolumeID == vol.ID {
			snap = s
			p.progress("snapshot", "found snapshot %s of this tree from an earlier attempt", s.ID)
		}
	}
	if snap.ID == "" {
		thaw := func() error { return nil }
		if p.Freezer != nil {
			p.progress("freeze", "freezing %s", dir)
			if thaw, err = p.Freezer.Freeze(ctx, dir); err != nil {
				return "", fmt.Errorf("freezing release volume %s: %w", vol.ID, err)
			}
		}
		snap, err = p.Cloud.CreateSnapshot(ctx, vol.ID, tags)
		if terr := thaw(); terr != nil && err == nil {
			err = fmt.Errorf("thawing %s: %w", dir, terr)
		}
		if err != nil {
			return "", fmt.Errorf("snapshotting release volume %s: %w", vol.ID, err)
		}
		p.progress("snapshot", "snapshot %s started", snap.ID)
	}
	deadline := p.Clock.Now().Add(p.SnapshotTimeout)
	last := ""
	for snap.State != handover.SnapshotCompleted {
		if snap.State == handover.SnapshotError {
			return "", fmt.Errorf("snapshot %s of release volume %s failed; publish again", snap.ID, vol.ID)
		}
		if snap.State != last {
			p.progress("snapshot", "snapshot %s is %s", snap.ID, snap.State)
			last = snap.State
		}
		if p.Clock.Now().After(deadline) {
			return "", fmt.Errorf("snapshot %s of release volume %s still %s after %s; publish the same name again to go on waiting", snap.ID, vol.ID, snap.State, p.SnapshotTimeout)
		}
		if err := p.Sleep(ctx, p.Poll); err != nil {
			return "", fmt.Errorf("waiting for snapshot %s: %w", snap.ID, err)
		}
		s, err := p.Cloud.DescribeSnapshot(ctx, snap.ID)
		if err != nil && !handover.Retryable(err) {
			return "", fmt.Errorf("reading snapshot %s: %w", snap.ID, err)
		}
		if err == nil {
			snap = s
		}
	}
	p.progress("snapshot", "snapshot %s completed", snap.ID)
	return snap.ID, nil
}

// fail records a publish that failed, on a context of its own: the
// caller's may be what ended it.
func (p *Publisher) fail(rel *ledger.Release, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		rel.State, rel.Error = ledger.ReleaseFailed, cause.Error()
		err := p.Ledger.SaveRelease(ctx, rel)
		if err == nil || !errors.Is(err, ledger.ErrConflict) {
			return
		}
		fresh, gerr := p.Ledger.GetRelease(ctx, rel.ID)
		if gerr != nil || fresh.State != ledger.ReleasePublishing {
			return
		}
		*rel = *fresh
	}
}

// SetLatest makes rel its channel's latest, creating the channel record on
// the first publish, and returns the previous latest.
func SetLatest(ctx context.Context, l Ledger, clk clock.Clock, rel *ledger.Release) (string, error) {
	for {
		ch, err := l.GetChannel(ctx, rel.Channel)
		if errors.Is(err, ledger.ErrNotFound) {
			ch, err = &ledger.Channel{ID: rel.Channel}, nil
		}
		if err != nil {
			return "", fmt.Errorf("reading channel %s: %w", rel.Channel, err)
		}
		prev := ch.Latest
		if prev == rel.Name {
			return ch.Previous, nil // already latest (a repeated call)
		}
		ch.Latest, ch.LatestSnapshot, ch.Previous, ch.UpdatedAt = rel.Name, rel.SnapshotID, prev, clk.Now()
		err = l.SaveChannel(ctx, ch)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("recording %s as channel %s's latest: %w", rel.Name, rel.Channel, err)
		}
		return prev, nil
	}
}

func writeMarker(dir string, m Marker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, MarkerFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, MarkerFile))
}

// ReadMarker reads the release marker at the root of a release volume.
func ReadMarker(dir string) (Marker, error) {
	b, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		return Marker{}, fmt.Errorf("reading the release marker: %w", err)
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return Marker{}, fmt.Errorf("parsing the release marker %s: %w", filepath.Join(dir, MarkerFile), err)
	}
	if m.Channel == "" || m.Name == "" {
		return Marker{}, fmt.Errorf("the release marker %s names no channel or release", filepath.Join(dir, MarkerFile))
	}
	return m, nil
}

// syncFS flushes the filesystem holding dir.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
