package rds

import (
	"path/filepath"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// Instance statuses, as RDS names them.
const (
	statusCreating  = "creating"
	statusAvailable = "available"
	statusModifying = "modifying"
	statusRebooting = "rebooting"
	statusDeleting  = "deleting"
	statusFailed    = "failed"
	statusStorage   = "storage-full"
)

// Jobs an instance can be in the middle of; saved, so a restart of the
// local cloud carries them on.
const (
	jobNone    = ""
	jobCreate  = "create"  // initdb and the master user
	jobReplica = "replica" // base backup from the source, then a standby
	jobRestore = "restore" // copy of a snapshot
	jobPromote = "promote"
	jobDelete  = "delete"
	jobStart   = "start" // after a restart of the local cloud
)

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// instance is one DB instance as the API sees it. Its files live under
// instances/<ResourceID>, which never changes: a rename only changes the
// identifier.
type instance struct {
	ID         string    `json:"id"`
	ResourceID string    `json:"resourceId"` // "db-…", names the directory and the replication slot
	Class      string    `json:"class"`
	Engine     string    `json:"engine"`
	Version    string    `json:"engineVersion"`
	Master     string    `json:"masterUsername"`
	DBName     string    `json:"dbName,omitempty"`
	Port       int       `json:"port"`
	Storage    int       `json:"allocatedStorage"`
	Retention  int       `json:"backupRetentionPeriod"`
	Protected  bool      `json:"deletionProtection"`
	Zone       string    `json:"availabilityZone"`
	SGs        []string  `json:"vpcSecurityGroupIds,omitempty"`
	Tags       []tag     `json:"tags,omitempty"`
	Created    time.Time `json:"created"`
	Status     string    `json:"status"`
	Job        string    `json:"job,omitempty"`
	// Source is the replica's source instance id; Replicas the source's
	// replica ids, in creation order.
	Source   string   `json:"source,omitempty"`
	Replicas []string `json:"replicas,omitempty"`
	// FromSnapshot is the snapshot a restore copies; FinalSnapshot the
	// snapshot a delete takes first; PromoteRetention what a promotion
	// sets BackupRetentionPeriod to.
	FromSnapshot     string `json:"fromSnapshot,omitempty"`
	FinalSnapshot    string `json:"finalSnapshot,omitempty"`
	PromoteRetention int    `json:"promoteRetention,omitempty"`
	// Verifier is the SCRAM verifier of the master password a create or
	// modify job still has to set; the password itself is never kept.
	Verifier string `json:"verifier,omitempty"`
	// Message says why the instance failed.
	Message string `json:"message,omitempty"`
}

// snapshot is one manual DB snapshot: a base backup under
// snapshots/<ResourceID>.
type snapshot struct {
	ID         string    `json:"id"`
	ResourceID string    `json:"resourceId"`
	Instance   string    `json:"instance"`   // the instance's id when taken
	InstanceRI string    `json:"instanceRI"` // and its resource id
	Engine     string    `json:"engine"`
	Version    string    `json:"engineVersion"`
	Master     string    `json:"masterUsername"`
	DBName     string    `json:"dbName,omitempty"`
	Port       int       `json:"port"`
	Storage    int       `json:"allocatedStorage"`
	Retention  int       `json:"backupRetentionPeriod"`
	Zone       string    `json:"availabilityZone"`
	InstCreate time.Time `json:"instanceCreated"`
	Created    time.Time `json:"created"`
	Status     string    `json:"status"`
	Tags       []tag     `json:"tags,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// state is everything saved.
type state struct {
	Version   int                  `json:"version"`
	Instances map[string]*instance `json:"instances"`
	Snapshots map[string]*snapshot `json:"snapshots"`
}

const stateVersion = 1

func statePath(dir string) string { return filepath.Join(dir, "rds.json") }

func loadState(dir string) (*state, error) {
	st := &state{Version: stateVersion, Instances: map[string]*instance{}, Snapshots: map[string]*snapshot{}}
	if _, err := statefile.ReadJSON(statePath(dir), st); err != nil {
		return nil, err
	}
	if st.Instances == nil {
		st.Instances = map[string]*instance{}
	}
	if st.Snapshots == nil {
		st.Snapshots = map[string]*snapshot{}
	}
	return st, nil
}
