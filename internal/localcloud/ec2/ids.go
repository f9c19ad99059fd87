package ec2

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// newID returns prefix followed by 17 hex digits, EC2's long id format.
func newID(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])[:17]
}

// validID reports whether id is prefix followed by 8 (EC2's old short
// format) or 17 lowercase hex digits.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || (len(rest) != 8 && len(rest) != 17) {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// kinds of resource, by id prefix: EC2's malformed and not-found error
// codes and its tag resource types.
type kind struct {
	prefix, resourceType, malformed, notFound, noun string
}

var (
	kindVolume   = kind{"vol-", "volume", "InvalidVolumeID.Malformed", "InvalidVolume.NotFound", "volume"}
	kindSnapshot = kind{"snap-", "snapshot", "InvalidSnapshotID.Malformed", "InvalidSnapshot.NotFound", "snapshot"}
	kindInstance = kind{"i-", "instance", "InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance ID"}
	kindImage    = kind{"ami-", "image", "InvalidAMIID.Malformed", "InvalidAMIID.NotFound", "image id"}
	kindTemplate = kind{"lt-", "launch-template", "InvalidLaunchTemplateId.Malformed", "InvalidLaunchTemplateId.NotFound", "launch template ID"}
)

// taggable are the kinds CreateTags accepts.
var taggable = []kind{kindVolume, kindSnapshot, kindInstance, kindTemplate}

func kindOfID(id string) (kind, bool) {
	for _, k := range append(taggable, kindImage) {
		if strings.HasPrefix(id, k.prefix) {
			return k, true
		}
	}
	return kind{}, false
}

// check returns EC2's malformed-id error for an id not of kind k.
func (k kind) check(id string) error {
	if !validID(id, k.prefix) {
		return awsproto.Errorf(k.malformed, "Invalid id: %q (expecting %q followed by 8 or 17 hex digits)", id, k.prefix)
	}
	return nil
}

func (k kind) notFoundErr(id string) error {
	if k.prefix == kindImage.prefix {
		return awsproto.Errorf(k.notFound, "The image id '[%s]' does not exist", id)
	}
	return awsproto.Errorf(k.notFound, "The %s '%s' does not exist", k.noun, id)
}

// selectIDs is the id selection every Describe call shares: all resources
// in id order when none are named, else the named ones, each of which must
// exist (EC2 fails the whole call on one unknown id), sorted and without
// repeats.
func selectIDs[T any](all map[string]*T, named []string, k kind) ([]string, error) {
	if len(named) == 0 {
		return slices.Sorted(maps.Keys(all)), nil
	}
	for _, id := range named {
		if all[id] == nil {
			return nil, k.notFoundErr(id)
		}
	}
	ids := slices.Clone(named)
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
