package ledger

import (
	"fmt"
	"regexp"
	"time"
)

// ReleaseState is where a release (S4 in docs/design.md) stands. States are
// stored by name.
type ReleaseState string

// Release states. Publishing is the only unfinished one: the publish is
// syncing, snapshotting or recording. Published releases can be rolled out;
// Failed ones never completed; Deleted ones had their snapshot removed by
// retention, so they can no longer be rolled out.
const (
	ReleasePublishing ReleaseState = "Publishing"
	ReleasePublished  ReleaseState = "Published"
	ReleaseFailed     ReleaseState = "Failed"
	ReleaseDeleted    ReleaseState = "Deleted"
)

// Terminal reports whether no further step of the publish follows s.
func (s ReleaseState) Terminal() bool { return s != ReleasePublishing }

// Release is one published (or publishing) version of a channel's code: a
// snapshot of the channel's release volume whose contents hash to
// ManifestHash.
type Release struct {
	// ID is ReleaseID(Channel, Name).
	ID      string       `json:"id"`
	Channel string       `json:"channel"`
	Name    string       `json:"name"`
	State   ReleaseState `json:"state"`
	// SourceVolume is the release volume the snapshot is taken of.
	SourceVolume string `json:"source_volume,omitempty"`
	SnapshotID   string `json:"snapshot_id,omitempty"`
	// ManifestHash is the sha256 of the release tree's manifest (every
	// path with its type, mode, size and content hash or link target).
	ManifestHash string `json:"manifest_hash,omitempty"`
	Files        int64  `json:"files,omitempty"`
	Bytes        int64  `json:"bytes,omitempty"`
	// Publisher names the process that published it (the channel lease's
	// holder).
	Publisher   string    `json:"publisher,omitempty"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	Version     int64     `json:"version"`
}

// Clone returns a deep copy.
func (r *Release) Clone() *Release { c := *r; return &c }

// Channel is a release channel: the groups that join it run its latest
// release.
type Channel struct {
	// ID is the channel's name.
	ID string `json:"id"`
	// Latest is the name of the release every instance of the channel is
	// to run, and LatestSnapshot its snapshot; empty before the first
	// publish.
	Latest         string `json:"latest,omitempty"`
	LatestSnapshot string `json:"latest_snapshot,omitempty"`
	// Previous is the release that was latest before, which a failed
	// rollout of Latest rolls back to.
	Previous  string    `json:"previous,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
}

// Clone returns a deep copy.
func (c *Channel) Clone() *Channel { cp := *c; return &cp }

// ReleaseID is the id of release name of channel.
func ReleaseID(channel, name string) string { return channel + "/" + name }

// ChannelLease is the name of the lease a publish (or a rollback) of
// channel holds: one at a time per channel.
func ChannelLease(channel string) string { return "release-channel/" + channel }

var releaseName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidReleaseName checks a channel or release name given by a user: 1 to
// 64 letters, digits, dots, dashes and underscores, starting with a letter
// or digit (they become tag values and parts of record ids).
func ValidReleaseName(what, s string) error {
	if !releaseName.MatchString(s) {
		return fmt.Errorf("%s %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", what, s)
	}
	return nil
}
