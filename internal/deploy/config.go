package deploy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/handover"
)

// Mode says how the controller runs on AWS.
type Mode string

// The deployment modes.
const (
	// ModeLambda runs the controller as a Lambda function fed by the
	// events queue, with a scheduled rule for reconcile and the sweeper.
	ModeLambda Mode = "lambda"
	// ModeController gives a long-running controller (EC2 or ECS) a role
	// and an instance profile; it consumes the queue itself.
	ModeController Mode = "controller"
)

// Hook names. The controller acts on hooks whose name starts with its hook
// prefix ("handover" by default), so both must keep that prefix.
const (
	HookPrefix    = "handover"
	LaunchHook    = HookPrefix + "-launch"
	TerminateHook = HookPrefix + "-terminate"
)

// AWS bounds a lifecycle hook's heartbeat timeout to this range.
const (
	MinHeartbeatTimeout = 30 * time.Second
	MaxHeartbeatTimeout = 7200 * time.Second
)

// Config describes one deployment. Start from DefaultConfig.
type Config struct {
	// Groups are the Auto Scaling groups handover serves; at least one.
	// Hooks, event rules and every group-scoped permission name them.
	Groups []string
	// Databases maps a group to the database id its launch hook's
	// NotificationMetadata names. A group without an entry uses its own
	// name.
	Databases map[string]string
	// Mode is lambda or controller.
	Mode Mode
	// HeartbeatTimeout of both hooks: how long an instance waits in
	// Pending:Wait (or Terminating:Wait) between two heartbeats.
	HeartbeatTimeout time.Duration
	// Fence is how the controller reaches the services' fence: "http"
	// (their endpoints; the default) or "ssm" (Run Command running
	// `handover agent fence`, which needs SSM permissions).
	Fence string
	// InstanceRoles are the IAM roles (name, or path/name) of the
	// instance profiles the groups' launch templates carry. A group
	// update passes them to EC2 when it points a group at a launch
	// template, so the controller may pass these and no other
	// (ModeController only; without them, no iam:PassRole at all).
	InstanceRoles []string
}

// The ways to fence (Config.Fence).
const (
	FenceHTTP = "http"
	FenceSSM  = "ssm"
)

// DefaultConfig is the Lambda deployment with a 10-minute heartbeat; the
// controller heartbeats long steps, so a short timeout only bounds how long
// a launch waits for a controller that died.
func DefaultConfig() Config {
	return Config{Mode: ModeLambda, HeartbeatTimeout: 10 * time.Minute, Fence: FenceHTTP}
}

// ErrNoGroups is Validate's error for a Config without groups.
var ErrNoGroups = errors.New("no Auto Scaling group named: handover needs at least one")

// FieldError is a Validate error about one field of Config, so that a
// command can name the flag that sets it.
type FieldError struct {
	// Field is "groups", "databases", "mode", "fence",
	// "heartbeat-timeout" or "instance-roles".
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks c and says what to change. Its errors are *FieldError.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeLambda, ModeController:
	default:
		return fieldErr("mode", "%q is not a mode: use %s or %s", c.Mode, ModeLambda, ModeController)
	}
	if c.Fence != FenceHTTP && c.Fence != FenceSSM {
		return fieldErr("fence", "%q is not a fence: use %s or %s", c.Fence, FenceHTTP, FenceSSM)
	}
	if len(c.Groups) == 0 {
		return &FieldError{Field: "groups", Err: ErrNoGroups}
	}
	seen := map[string]bool{}
	for _, g := range c.Groups {
		if err := ValidateGroupName(g); err != nil {
			return &FieldError{Field: "groups", Err: err}
		}
		if seen[g] {
			return fieldErr("groups", "group %q is named twice", g)
		}
		seen[g] = true
	}
	for _, g := range slices.Sorted(maps.Keys(c.Databases)) {
		if !seen[g] {
			return fieldErr("databases", "database for group %q: that group is not among the groups named (%s)", g, strings.Join(c.Groups, ", "))
		}
	}
	for _, g := range c.Groups {
		if _, err := metadata(c.database(g)); err != nil {
			if _, given := c.Databases[g]; !given {
				return fieldErr("databases", "database of group %q (none was given, so the group's name): %w", g, err)
			}
			return fieldErr("databases", "database of group %q: %w", g, err)
		}
	}
	if len(c.InstanceRoles) > 0 && c.Mode != ModeController {
		return fieldErr("instance-roles", "instance roles are for group updates, which only --mode %s runs (the %s deployment has no API to start one)", ModeController, c.Mode)
	}
	roles := map[string]bool{}
	for _, r := range c.InstanceRoles {
		if err := ValidateRoleName(r); err != nil {
			return &FieldError{Field: "instance-roles", Err: err}
		}
		if roles[r] {
			return fieldErr("instance-roles", "role %q is named twice", r)
		}
		roles[r] = true
	}
	h := c.HeartbeatTimeout
	if h < MinHeartbeatTimeout || h > MaxHeartbeatTimeout || h%time.Second != 0 {
		return fieldErr("heartbeat-timeout", "heartbeat timeout %s is outside what AWS accepts: whole seconds from %s to %s (%d–%d s)",
			h, MinHeartbeatTimeout, MaxHeartbeatTimeout, int(MinHeartbeatTimeout/time.Second), int(MaxHeartbeatTimeout/time.Second))
	}
	return nil
}

// ValidateGroupName applies AWS's rule for Auto Scaling group names: 1–255
// printable ASCII characters (33–126), no colon.
func ValidateGroupName(g string) error {
	if g == "" || len(g) > 255 {
		return fmt.Errorf("group name %q: AWS allows 1 to 255 characters", g)
	}
	for _, r := range g {
		if r < 33 || r > 126 {
			return fmt.Errorf("group name %q: AWS allows only printable ASCII without spaces (characters 33–126), found %q", g, r)
		}
		if r == ':' {
			return fmt.Errorf("group name %q: AWS does not allow a colon in a group name", g)
		}
	}
	if readsAsIntrinsic(g) {
		return fmt.Errorf("group name %q reads as an encoded CloudFormation function to the template library; rename the group", g)
	}
	return nil
}

// ValidateRoleName applies IAM's rules for a role name (1–64 of
// A–Z a–z 0–9 and +=,.@_-), optionally under a path of segments of the
// same characters: "orders-instance" or "app/orders-instance". An ARN is
// refused, since the template builds the ARN in the stack's partition and
// account.
func ValidateRoleName(r string) error {
	if strings.HasPrefix(r, "arn:") {
		return fmt.Errorf("role %q: give the role's name (with its path, if any), not its ARN", r)
	}
	segs := strings.Split(r, "/")
	if name := segs[len(segs)-1]; name == "" || len(name) > 64 {
		return fmt.Errorf("role %q: IAM allows role names of 1 to 64 characters", r)
	}
	if len(r) > 512 {
		return fmt.Errorf("role %q: IAM allows paths of at most 512 characters", r)
	}
	for _, seg := range segs {
		if seg == "" {
			return fmt.Errorf("role %q: a path has no empty segments and no leading or trailing slash", r)
		}
		for _, c := range seg {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+=,.@_-", c)
			if !ok {
				return fmt.Errorf("role %q: IAM allows only letters, digits and +=,.@_- in role names and paths, found %q", r, c)
			}
		}
	}
	if readsAsIntrinsic(r) {
		return fmt.Errorf("role %q reads as an encoded CloudFormation function to the template library", r)
	}
	return nil
}

// updates reports whether the deployment runs group updates, and so
// whether the groups it serves include their replace-all successors.
func (c Config) updates() bool { return c.Mode == ModeController }

// database is the database id of group g.
func (c Config) database(g string) string {
	if db, ok := c.Databases[g]; ok {
		return db
	}
	return g
}

// metadata is the launch hook's NotificationMetadata for database db. It is
// checked with the parser the controller uses, so a template never carries
// metadata the controller would abandon launches over.
func metadata(db string) (string, error) {
	b, err := json.Marshal(handover.Metadata{Database: db})
	if err != nil {
		return "", err
	}
	md, err := handover.ParseMetadata(string(b))
	if err != nil {
		return "", err
	}
	if md.Database != db {
		return "", fmt.Errorf("database id %q does not survive the controller's parser (got %q)", db, md.Database)
	}
	if readsAsIntrinsic(db) {
		return "", fmt.Errorf("database id %q reads as an encoded CloudFormation function to the template library; choose another id", db)
	}
	return string(b), nil
}

// readsAsIntrinsic reports whether goformation would take s for one of its
// base64-encoded intrinsic functions and replace it while rendering: a
// name that happens to be such a string would otherwise vanish from the
// template silently.
func readsAsIntrinsic(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return false
	}
	var m map[string]any
	return json.Unmarshal(b, &m) == nil
}

// ParseDatabase splits a GROUP=DB flag value.
func ParseDatabase(s string) (group, db string, err error) {
	group, db, ok := strings.Cut(s, "=")
	if !ok || group == "" || db == "" {
		return "", "", fmt.Errorf("%q is not GROUP=DATABASE (e.g. orders-asg=orders)", s)
	}
	return group, db, nil
}
