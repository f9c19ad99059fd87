package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
)

// fakeService is the stateful service on every instance, reached by the
// controller through its fence endpoints. Its write fence is a fence.Gate
// kept on the volume, as a real service persists it.
type fakeService struct{ w *world }

var _ handover.Service = fakeService{}

func (s fakeService) reach(addr, op string) (*instance, error) {
	s.w.maybeCrash()
	for _, i := range s.w.instances {
		if i.ip != addr {
			continue
		}
		if i.state != handover.InstanceRunning || i.unreachable || s.w.down[i.zone] {
			return nil, fmt.Errorf("%s %s: connection timed out: %w", op, addr, fence.ErrUnreachable)
		}
		if !i.svcUp || i.vol == nil {
			return nil, fmt.Errorf("%s %s: connection refused: %w", op, addr, fence.ErrUnreachable)
		}
		return i, nil
	}
	return nil, fmt.Errorf("%s %s: no route to host: %w", op, addr, fence.ErrUnreachable)
}

func (s fakeService) Fence(_ context.Context, t handover.Target, epoch int64) error {
	addr := t.Addr
	i, err := s.reach(addr, "fencing")
	if err != nil {
		return err
	}
	defer s.w.maybeCrash()
	s.w.stats.Fences++
	return i.vol.gate.Fence(epoch)
}

func (s fakeService) Unfence(_ context.Context, t handover.Target, epoch int64) error {
	addr := t.Addr
	i, err := s.reach(addr, "unfencing")
	if err != nil {
		return err
	}
	defer s.w.maybeCrash()
	s.w.stats.Unfences++
	return i.vol.gate.Unfence(epoch)
}

func (s fakeService) Healthy(_ context.Context, t handover.Target) error {
	addr := t.Addr
	i, err := s.reach(addr, "checking health of")
	if err != nil {
		return err
	}
	if i.unhealthy {
		return fmt.Errorf("health of %s: 500 from /healthz", addr)
	}
	return nil
}

// client is the load a user puts on each database through its load
// balancer, and the record of every write the service acknowledged.
type client struct {
	w     *world
	acked map[string]map[string]string // database → key → value
	keys  map[string][]string          // database → keys in ack order
	seq   int
}

func (c *client) targets(g *group) []*instance {
	var out []*instance
	for _, id := range g.members {
		if i := c.w.instances[id]; i.serving() && !c.w.down[i.zone] {
			out = append(out, i)
		}
	}
	return out
}

// tick sends one write and one read to each database.
func (c *client) tick() {
	w := c.w
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		ts := c.targets(g)
		if slices.ContainsFunc(ts, func(i *instance) bool { return i.id != c.w.excused[g.db] }) {
			delete(c.w.excused, g.db)
		}
		c.checkWriters(g, ts)
		c.write(g, ts)
		c.read(g, ts)
	}
}

// checkWriters is invariant 3: never two writers for one database.
func (c *client) checkWriters(g *group, ts []*instance) {
	var writers []string
	for _, i := range ts {
		if fenced, _ := i.vol.gate.Fenced(); !fenced {
			writers = append(writers, i.id+"/"+i.vol.id)
		}
	}
	if len(writers) > 1 {
		c.w.violate("invariant 3: database %s has two writers: %v", g.db, writers)
	}
}

func (c *client) write(g *group, ts []*instance) {
	if len(ts) == 0 {
		c.w.stats.WritesFailed++
		return
	}
	i := ts[c.w.rng.IntN(len(ts))]
	done, err := i.vol.gate.BeginWrite()
	if errors.Is(err, fence.ErrFenced) {
		c.w.stats.WritesRefused++ // 503 + Retry-After: the client tries again later
		return
	}
	if err != nil {
		c.w.violate("write gate failed on %s: %v", i.id, err)
		return
	}
	c.seq++
	key, val := "k"+strconv.Itoa(c.seq), i.id+"@"+c.w.clk.Now().Format(time.TimeOnly)
	// The service fsyncs before it acknowledges: the write is on the volume.
	i.vol.data[key] = val
	done()
	if c.acked[g.db] == nil {
		c.acked[g.db] = map[string]string{}
	}
	c.acked[g.db][key] = val
	c.keys[g.db] = append(c.keys[g.db], key)
	c.w.stats.WritesAcked++
}

// read is invariant 7 (reads keep being served) and, online, invariant 2
// (every acknowledged write is readable).
func (c *client) read(g *group, ts []*instance) {
	keys := c.keys[g.db]
	if len(keys) == 0 {
		return
	}
	if len(ts) == 0 {
		if c.w.excused[g.db] != "" {
			c.w.stats.ReadsFailedExcused++
			return
		}
		c.w.stats.ReadsFailed++
		var members []string
		for _, id := range g.members {
			i := c.w.instances[id]
			members = append(members, fmt.Sprintf("%s:%s/%s up=%v vol=%v unhealthy=%v unreachable=%v", id, i.state, i.lifecycle, i.svcUp, i.vol != nil, i.unhealthy, i.unreachable))
		}
		c.w.violate("invariant 7: no instance serves reads for database %s (members %v)", g.db, members)
		return
	}
	i := ts[c.w.rng.IntN(len(ts))]
	key := keys[c.w.rng.IntN(len(keys))]
	if got, want := i.vol.data[key], c.acked[g.db][key]; got != want {
		c.w.violate("invariant 2: read of acknowledged %s=%q from %s (volume %s) returned %q", key, want, i.id, i.vol.id, got)
		return
	}
	c.w.stats.ReadsOK++
}

// bus is the events queue: at-least-once, with drops, duplicates, delays
// and so reordering, and a visibility timeout for unacknowledged messages.
type bus struct {
	w    *world
	msgs []*message
}

type message struct {
	body      string
	visibleAt time.Time
	receives  int
}

func (b *bus) push(body string) {
	w := b.w
	w.stats.Events++
	if w.chance(w.f.DropEvent) {
		w.stats.EventsDropped++
		return
	}
	n := 1
	if w.chance(w.f.DuplicateEvent) {
		n = 2
		w.stats.EventsDuplicated++
	}
	for range n {
		b.msgs = append(b.msgs, &message{body: body, visibleAt: w.clk.Now().Add(w.between(0, w.f.EventDelayMax))})
	}
}

// visible returns the messages visible now, in random order.
func (b *bus) visible() []*message {
	var out []*message
	now := b.w.clk.Now()
	for _, m := range b.msgs {
		if !now.Before(m.visibleAt) {
			out = append(out, m)
		}
	}
	b.w.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (b *bus) remove(m *message) {
	b.msgs = slices.DeleteFunc(b.msgs, func(x *message) bool { return x == m })
}
