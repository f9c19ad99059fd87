// Package ec2 is the local cloud's EC2: an endpoint that the unmodified
// aws-sdk-go-v2 and AWS CLI talk to in EC2's Query protocol, with only the
// endpoint URL changed, backed by local directories (volumes), a
// content-addressed store (snapshots) and local processes (instances), each
// instance with its own instance-metadata endpoint.
//
// Every EC2 here has DefaultImageID, a generic image that runs the user
// data, besides its catalog (DescribeImages lists them).
//
// It behaves like EC2 where handover's correctness depends on it:
// asynchronous snapshots and volume restores, volumes bound to a zone and to
// one instance at a time, client-token idempotency, EC2's error codes,
// filters and paging, and the EventBridge events EC2 emits.
//
// It must never touch anything outside DataDir and the loopback network, and
// never leave an instance process running after Close.
package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/snapstore"
	"github.com/handover-dev/handover/internal/pacing"
)

// Image is what an AMI id of the local catalog stands for: the command an
// instance started from it runs.
type Image struct {
	// Command is the program and its arguments; Command[0] is looked up in
	// PATH when it has no slash.
	Command []string `json:"command"`
	// Env is added to every instance's environment.
	Env map[string]string `json:"env,omitempty"`
	// Name and Description are what DescribeImages shows; the name
	// defaults to the image id.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// RunsUserData makes the command run whether or not the instance has
	// user data: the command runs the user data itself (the file named by
	// HANDOVER_USER_DATA), as an operating system's boot does. Without it,
	// an instance with user data runs that as a shell script instead of the
	// command.
	RunsUserData bool `json:"runsUserData,omitempty"`
}

// DefaultImageID is the image every local cloud has, whatever its catalog:
// a generic one that runs the user data as a shell script and then idles,
// as an instance of a real AMI keeps running after its user data, or just
// idles when there is none. A catalog entry with the same id replaces it.
const DefaultImageID = "ami-0000000000000000a"

// DefaultImage is the image DefaultImageID stands for.
func DefaultImage() Image {
	return Image{
		Name:         "handover-localcloud-default",
		Description:  "Generic image: runs the instance's user data as a shell script, then idles (idles at once without user data)",
		RunsUserData: true,
		Command: []string{"/bin/sh", "-c", `if [ -n "$HANDOVER_USER_DATA" ]; then /bin/sh "$HANDOVER_USER_DATA"; echo "user data exited with status $?"; fi
while :; do sleep 3600; done`},
	}
}

// Publisher delivers an event (EventBridge JSON) to the local EventBridge.
// Publish may be called from several goroutines, but the Service calls it
// from one goroutine at a time, in the order the events happened. An error is
// logged and the event dropped: EC2's events are best-effort too.
type Publisher interface {
	Publish(ctx context.Context, event []byte) error
}

// FaultInjector lets tests and the `localcloud` fault switches fail or slow
// API calls. Inject is called before every action; a non-nil error (an
// *awsproto.Error, or anything else for an InternalError) is the call's
// answer. It may sleep to add latency, and must return when ctx ends.
type FaultInjector interface {
	Inject(ctx context.Context, service, action string) error
}

// SnapshotFaults is an optional interface of a FaultInjector, detected by
// type assertion, for the faults of asynchronous snapshots.
type SnapshotFaults interface {
	// SnapshotFault is asked once when a snapshot of volumeID starts. The
	// snapshot takes at least minDuration (on top of Config's
	// MinSnapshotDuration), and ends in the error state with err's text as
	// its cause when err is not nil.
	SnapshotFault(snapshotID, volumeID string) (minDuration time.Duration, err error)
}

// SnapshotStore is the content-addressed store snapshots live in:
// *snapstore.Store. Progress callbacks receive cumulative bytes done of a
// total and may be called from any goroutine.
type SnapshotStore interface {
	// Create stores the contents of srcDir as snapshot id, reusing what it
	// can of parentID ("" for none). It fails, wrapping snapstore.ErrExists,
	// when id already has a completed snapshot.
	Create(ctx context.Context, id, srcDir, parentID string, progress func(done, total int64)) (*snapstore.Manifest, snapstore.Stats, error)
	// Restore writes snapshot id into dstDir, an empty or absent directory;
	// on failure it removes what it wrote, so it is safe to repeat.
	Restore(ctx context.Context, id, dstDir string, progress func(done, total int64)) (snapstore.Stats, error)
	// Delete forgets snapshot id; a missing one is not an error.
	Delete(id string) error
	// GC frees content no snapshot refers to any more. Safe to repeat.
	GC(ctx context.Context) (removedChunks int, freedBytes int64, err error)
}

// Defaults of Config's zero fields.
const (
	DefaultRegion              = "us-east-1"
	DefaultAccountID           = "123456789012"
	DefaultStopTimeout         = 10 * time.Second
	DefaultTerminatedRetention = time.Hour
)

// DefaultSubnet is where instances' private addresses come from: loopback,
// so every instance's service can listen on the same port of its own
// address. 127.0.0.1 is never handed out.
var DefaultSubnet = netip.MustParsePrefix("127.0.0.0/16")

// Config configures a Service. The zero value of every field but DataDir,
// Snapshots and Catalog (for instances) means its default.
type Config struct {
	// DataDir holds volumes/, instances/ and ec2-state.json.
	DataDir string
	// Region is the region the endpoint pretends to be (default us-east-1).
	Region string
	// AccountID is the owner of every resource (default 123456789012).
	AccountID string
	// Zones are the region's availability zones (default REGION a, b, c).
	Zones []string
	// Catalog maps AMI ids to images (see LoadCatalog); DefaultImageID is
	// added unless the catalog has it.
	Catalog map[string]Image
	// Snapshots stores snapshot contents.
	Snapshots SnapshotStore
	// Publisher receives EC2's EventBridge events; nil drops them.
	Publisher Publisher
	// EventShape chooses among the shapes AWS emits EBS events in.
	EventShape events.EncodeOptions
	// Faults, when set, may fail or slow any call.
	Faults FaultInjector
	// Throttle enables server-side throttling for the families it names
	// (see pacing.EC2Family): an empty bucket answers RequestLimitExceeded.
	// Nil means no throttling.
	Throttle map[pacing.Family]pacing.Bucket
	// MinSnapshotDuration makes every snapshot take at least this long (the
	// "slow snapshots" fault).
	MinSnapshotDuration time.Duration
	// StopTimeout is how long a stopping or terminating instance's processes
	// get between SIGTERM and SIGKILL (default 10s).
	StopTimeout time.Duration
	// TerminatedRetention is how long terminated instances stay visible
	// (default one hour, as in EC2).
	TerminatedRetention time.Duration
	// Subnet is where private addresses are allocated; it must lie in
	// 127.0.0.0/8 (default 127.0.0.0/16).
	Subnet netip.Prefix
	// Clock stamps resources and events (default the wall clock). Waiting
	// (stop timeouts, slow snapshots) uses real timers.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Validate reports a configuration New would refuse, every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is empty; want the directory that holds the local cloud's EC2 state"))
	}
	if c.Snapshots == nil {
		errs = append(errs, errors.New("Snapshots is nil; want a snapshot store (snapstore.Open)"))
	}
	d := c.withDefaults()
	if !events.IsRegion(d.Region) {
		errs = append(errs, fmt.Errorf("Region %q is not a region name like us-east-1", d.Region))
	}
	if !isAccount(d.AccountID) {
		errs = append(errs, fmt.Errorf("AccountID %q is not 12 digits", d.AccountID))
	}
	seen := map[string]bool{}
	for _, z := range d.Zones {
		rest, ok := strings.CutPrefix(z, d.Region)
		if !ok || len(rest) != 1 || rest[0] < 'a' || rest[0] > 'z' {
			errs = append(errs, fmt.Errorf("zone %q is not region %s followed by one letter", z, d.Region))
		}
		if seen[z] {
			errs = append(errs, fmt.Errorf("zone %q is listed twice", z))
		}
		seen[z] = true
	}
	for _, id := range slices.Sorted(maps.Keys(c.Catalog)) {
		if err := c.Catalog[id].validate(id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(c.Throttle)) {
		if err := c.Throttle[f].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("throttle bucket for %s: %w", f, err))
		}
	}
	if c.MinSnapshotDuration < 0 || c.StopTimeout < 0 || c.TerminatedRetention < 0 {
		errs = append(errs, errors.New("MinSnapshotDuration, StopTimeout and TerminatedRetention must not be negative"))
	}
	if p := d.Subnet; !p.IsValid() || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 || !netip.MustParsePrefix("127.0.0.0/8").Contains(p.Addr()) {
		errs = append(errs, fmt.Errorf("Subnet %v is not an IPv4 prefix of /8 to /30 inside 127.0.0.0/8", d.Subnet))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ec2 config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if len(c.Zones) == 0 {
		c.Zones = []string{c.Region + "a", c.Region + "b", c.Region + "c"}
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.TerminatedRetention == 0 {
		c.TerminatedRetention = DefaultTerminatedRetention
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if _, ok := c.Catalog[DefaultImageID]; !ok {
		cat := maps.Clone(c.Catalog)
		if cat == nil {
			cat = map[string]Image{}
		}
		cat[DefaultImageID] = DefaultImage()
		c.Catalog = cat
	}
	return c
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (im Image) validate(id string) error {
	switch {
	case !validID(id, "ami-"):
		return fmt.Errorf("image %q: the id is not ami- followed by 8 or 17 hex digits", id)
	case len(im.Command) == 0 || im.Command[0] == "":
		return fmt.Errorf("image %q: command is empty; want the program and its arguments", id)
	}
	for k := range im.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("image %q: environment variable name %q is empty or has '=' or NUL in it", id, k)
		}
	}
	return nil
}

// catalogFile is the JSON shape of an image catalog.
type catalogFile struct {
	Images map[string]Image `json:"images"`
}

// LoadCatalog reads an image catalog, a JSON file like
//
//	{"images": {"ami-0123456789abcdef0": {"command": ["/usr/bin/app", "--flag"],
//	  "env": {"K": "V"}, "description": "app 1.2"}}}
//
// and checks every entry, naming the bad ones.
func LoadCatalog(path string) (map[string]Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image catalog: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var f catalogFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("image catalog %s: %w (want {\"images\": {\"ami-…\": {\"command\": [...]}}})", path, err)
	}
	if len(f.Images) == 0 {
		return nil, fmt.Errorf("image catalog %s: no images; want {\"images\": {\"ami-…\": {\"command\": [...]}}}", path)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(f.Images)) {
		if err := f.Images[id].validate(id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("image catalog %s: %w", path, err)
	}
	return f.Images, nil
}
