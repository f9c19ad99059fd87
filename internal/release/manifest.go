package release

import "github.com/handover-dev/handover/internal/manifest"

// MarkerFile is the file at the root of a release volume that says which
// release the volume holds. It is written by publish, read by the agent,
// and is not part of the release's tree: a DIR that has one at its top is
// refused, and the manifest and the sync leave it out.
const MarkerFile = ".handover-release.json"

// A release tree is described by internal/manifest, which environments
// share (a database volume's manifest): Entry and Manifest are its types.
type (
	Entry    = manifest.Entry
	Manifest = manifest.Manifest
)

// ErrUnsupported marks a tree entry a release cannot hold: a device, a
// socket or a named pipe. Terminal: remove it from the tree.
var ErrUnsupported = manifest.ErrUnsupported

// modeBits are the mode bits a release keeps.
const modeBits = manifest.ModeBits

// BuildManifest reads the tree under root, hashing every file. At the root
// the marker file is left out.
func BuildManifest(root string) (Manifest, error) {
	return manifest.Build(root, func(rel string) bool { return rel == MarkerFile })
}

func hashFile(p string) (string, error) { return manifest.HashFile(p) }
