package localcloud

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

// Instances listen on their private addresses, which are loopback
// addresses of this machine. Two local clouds handing out the same
// addresses (tests running in parallel, a demo next to a test) would let
// one cloud's load balancer or controller talk to the other's instance, so
// each running cloud claims a /16 of 127.0.0.0/8 of its own: it holds an
// exclusive flock on a file named for the block while it runs. The claim
// ends with the process, whatever way it ends.

// claimDir holds the claim files; one directory for the whole machine.
var claimDir = filepath.Join(os.TempDir(), "handover-localcloud-subnets")

// claimSubnet returns a free 127.X.0.0/16 (X in 1..254) and the file whose
// lock holds it. It starts at a random block so concurrent starts rarely
// race for the same one.
func claimSubnet() (netip.Prefix, *os.File, error) {
	if err := os.MkdirAll(claimDir, 0o777); err != nil {
		return netip.Prefix{}, nil, fmt.Errorf("creating %s: %w", claimDir, err)
	}
	start := rand.IntN(254)
	for i := range 254 {
		x := 1 + (start+i)%254
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(x), 0, 0}), 16)
		f, err := os.OpenFile(filepath.Join(claimDir, fmt.Sprintf("127.%d.lock", x)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return netip.Prefix{}, nil, fmt.Errorf("claiming subnet %s: %w", p, err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return p, f, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return netip.Prefix{}, nil, fmt.Errorf("claiming subnet %s: %w", p, err)
		}
	}
	return netip.Prefix{}, nil, errors.New("every 127.X.0.0/16 block is claimed by another local cloud on this machine")
}
