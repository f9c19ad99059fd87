package handover

import (
	"sync"

	"github.com/handover-dev/handover/internal/ledger"
)

// touchIndex maps the instances, snapshots and volumes of the unfinished
// migrations this controller stored to their ids, so an event about one of
// them finds its migration without listing and decoding every unfinished
// migration (the controller-throughput profile: that scan was half the CPU
// of an event at 100 migrations in flight). It only ever narrows what an
// event wakes: a miss falls back to the scan, and a migration another
// controller stored is found that way or by the advance loop. Events are
// hints either way.
type touchIndex struct {
	mu    sync.Mutex
	byRes map[string]map[string]bool // resource id → migration ids
	byMig map[string][]string        // migration id → its resource ids
}

func newTouchIndex() *touchIndex {
	return &touchIndex{byRes: map[string]map[string]bool{}, byMig: map[string][]string{}}
}

// put records m as stored now: its resources, or none once it ended.
func (x *touchIndex) put(m *ledger.Migration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range x.byMig[m.ID] {
		delete(x.byRes[r], m.ID)
		if len(x.byRes[r]) == 0 {
			delete(x.byRes, r)
		}
	}
	delete(x.byMig, m.ID)
	if m.State.Terminal() {
		return
	}
	var res []string
	for _, r := range []string{m.Instance, m.Source, m.PreCopySnapshot, m.FinalSnapshot, m.Volume, m.SourceVolume} {
		if r == "" {
			continue
		}
		if x.byRes[r] == nil {
			x.byRes[r] = map[string]bool{}
		}
		x.byRes[r][m.ID] = true
		res = append(res, r)
	}
	x.byMig[m.ID] = res
}

// lookup returns the migrations touching any of ids, or nil on a miss.
func (x *touchIndex) lookup(ids ...string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, r := range ids {
		if r == "" {
			continue
		}
		for id := range x.byRes[r] {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}
