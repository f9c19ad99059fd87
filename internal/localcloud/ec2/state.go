package ec2

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// The persisted model. Everything the API shows lives here and is written
// to DataDir/ec2-state.json after every change, so a restarted local cloud
// comes back as it was (running instances as after a reboot).

// stateVersion is bumped when the file's meaning changes incompatibly.
const stateVersion = 1

const stateFile = "ec2-state.json"

type state struct {
	Version   int                          `json:"version"`
	Volumes   map[string]*volume           `json:"volumes"`
	Snapshots map[string]*snapshot         `json:"snapshots"`
	Instances map[string]*instance         `json:"instances"`
	Templates map[string]*launchTemplate   `json:"launchTemplates"`
	Tags      map[string]map[string]string `json:"tags"` // resource id → key → value
	Tokens    map[string]*clientToken      `json:"clientTokens"`
}

func newState() *state {
	return &state{
		Version:   stateVersion,
		Volumes:   map[string]*volume{},
		Snapshots: map[string]*snapshot{},
		Instances: map[string]*instance{},
		Templates: map[string]*launchTemplate{},
		Tags:      map[string]map[string]string{},
		Tokens:    map[string]*clientToken{},
	}
}

// Volume states, as EC2 names them.
const (
	volCreating  = "creating"
	volAvailable = "available"
	volInUse     = "in-use"
	volError     = "error"
	volDeleted   = "deleted"
)

type volume struct {
	ID         string      `json:"id"`
	Zone       string      `json:"zone"`
	Size       int         `json:"size"`
	Type       string      `json:"type"`
	Iops       int         `json:"iops,omitempty"`
	SnapshotID string      `json:"snapshotId,omitempty"`
	Status     string      `json:"status"`
	CreateTime time.Time   `json:"createTime"`
	Attachment *attachment `json:"attachment,omitempty"`
	// Progress is the restore's percentage while creating (not shown by
	// DescribeVolumes, which has no such field, but logged).
	Progress int `json:"-"`
}

type attachment struct {
	InstanceID string    `json:"instanceId"`
	Device     string    `json:"device"`
	AttachTime time.Time `json:"attachTime"`
}

// Snapshot states.
const (
	snapPending   = "pending"
	snapCompleted = "completed"
	snapError     = "error"
)

type snapshot struct {
	ID          string `json:"id"`
	VolumeID    string `json:"volumeId"`
	VolumeSize  int    `json:"volumeSize"`
	Description string `json:"description,omitempty"`
	Status      string `json:"status"`
	// StatusMessage is the cause of an error.
	StatusMessage  string    `json:"statusMessage,omitempty"`
	Progress       int       `json:"progress"`
	StartTime      time.Time `json:"startTime"`
	CompletionTime time.Time `json:"completionTime,omitzero"`
	// ParentID is the snapshot this one is stored incrementally against.
	ParentID string `json:"parentId,omitempty"`
	// DeleteRequested marks a pending snapshot DeleteSnapshot was called
	// on: as in EBS, the deletion takes effect once it completes.
	DeleteRequested bool `json:"deleteRequested,omitempty"`
	// Captured records that CreateSnapshot stored the volume's content
	// (its point in time); a job started again after a restart does not
	// read the volume again. Older state files lack it: those read it.
	Captured bool `json:"captured,omitempty"`
}

// Instance states and their EC2 codes.
const (
	instPending      = "pending"
	instRunning      = "running"
	instShuttingDown = "shutting-down"
	instTerminated   = "terminated"
	instStopping     = "stopping"
	instStopped      = "stopped"
)

var stateCodes = map[string]int{
	instPending: 0, instRunning: 16, instShuttingDown: 32,
	instTerminated: 48, instStopping: 64, instStopped: 80,
}

type instance struct {
	ID            string    `json:"id"`
	ReservationID string    `json:"reservationId"`
	ImageID       string    `json:"imageId"`
	InstanceType  string    `json:"instanceType"`
	Zone          string    `json:"zone"`
	PrivateIP     string    `json:"privateIp"`
	State         string    `json:"state"`
	Reason        string    `json:"reason,omitempty"`
	LaunchTime    time.Time `json:"launchTime"`
	TerminatedAt  time.Time `json:"terminatedAt,omitzero"`
	UserData      []byte    `json:"userData,omitempty"`
	LaunchIndex   int       `json:"launchIndex"`
	ClientToken   string    `json:"clientToken,omitempty"`
}

type launchTemplate struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	CreateTime     time.Time       `json:"createTime"`
	DefaultVersion int64           `json:"defaultVersion"`
	LatestVersion  int64           `json:"latestVersion"`
	Versions       []*templateVers `json:"versions"`
}

type templateVers struct {
	Number      int64        `json:"number"`
	Description string       `json:"description,omitempty"`
	CreateTime  time.Time    `json:"createTime"`
	Data        templateData `json:"data"`
}

// templateData is the part of a launch template's data the local cloud
// uses; other fields are accepted and ignored.
type templateData struct {
	ImageID      string    `json:"imageId,omitempty"`
	InstanceType string    `json:"instanceType,omitempty"`
	UserData     string    `json:"userData,omitempty"` // base64, as given
	Zone         string    `json:"zone,omitempty"`
	TagSpecs     []tagSpec `json:"tagSpecs,omitempty"`
}

// clientToken remembers an idempotent request: repeating it with the same
// parameters returns the same resources; with others, an error.
type clientToken struct {
	Hash string   `json:"hash"`
	IDs  []string `json:"ids"`
	// Volume is a copy of the volume created, to answer a repeat after the
	// volume was deleted.
	Volume *volume `json:"volume,omitempty"`
}

// loadState reads the state file, or returns an empty state when there is
// none yet.
func loadState(dir string) (*state, error) {
	st := newState()
	found, err := statefile.ReadJSON(filepath.Join(dir, stateFile), st)
	if err != nil && found { // there but corrupt
		return nil, fmt.Errorf("reading ec2 state: %w (move it aside to start afresh)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading ec2 state: %w", err)
	}
	if !found {
		return st, nil
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("ec2 state %s has version %d; this build reads version %d", filepath.Join(dir, stateFile), st.Version, stateVersion)
	}
	// Maps absent from the file come back nil; make them usable.
	fresh := newState()
	if st.Volumes == nil {
		st.Volumes = fresh.Volumes
	}
	if st.Snapshots == nil {
		st.Snapshots = fresh.Snapshots
	}
	if st.Instances == nil {
		st.Instances = fresh.Instances
	}
	if st.Templates == nil {
		st.Templates = fresh.Templates
	}
	if st.Tags == nil {
		st.Tags = fresh.Tags
	}
	if st.Tokens == nil {
		st.Tokens = fresh.Tokens
	}
	return st, nil
}

// saveState writes st atomically: a temporary file, synced, renamed over
// the old one, and the directory synced, so a crash leaves either the old
// state or the new one.
func saveState(dir string, st *state) error {
	if err := statefile.WriteJSON(filepath.Join(dir, stateFile), st); err != nil {
		return fmt.Errorf("saving ec2 state: %w", err)
	}
	return nil
}
