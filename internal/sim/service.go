package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
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

var (
	_ handover.Service = fakeService{}
	_ handover.Retirer = fakeService{}
)

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

func (s fakeService) Retire(_ context.Context, t handover.Target, epoch int64, successor handover.Target) error {
	i, err := s.reach(t.Addr, "retiring")
	if err != nil {
		return err
	}
	defer s.w.maybeCrash()
	s.w.stats.Retires++
	return i.vol.gate.Retire(epoch, net.JoinHostPort(successor.Addr, strconv.Itoa(fence.DefaultPort)))
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
// balancer, and the record of every write the service acknowledged. Each
// tick it writes a fresh key, reads back the freshest write it got
// acknowledged (a tenant reading what it just wrote), and reads an older
// one at random.
type client struct {
	w     *world
	acked map[string]map[string]ackedWrite // database → key → write
	keys  map[string][]string              // database → keys in ack order
	// newest is, per database, the highest epoch any write was
	// acknowledged under: from then on no read may be answered from an
	// older epoch's data (invariant no-stale-reads).
	newest map[string]int64
	seq    int
}

// ackedWrite is one acknowledged write: its value and the epoch of the
// volume that acknowledged it.
type ackedWrite struct {
	val   string
	epoch int64
}

// targets are the instances the database's load balancer sends requests to.
func (c *client) targets(g *group) []*instance {
	var out []*instance
	for _, id := range g.members {
		if i := c.w.instances[id]; i.inLB() && !c.w.down[i.zone] {
			out = append(out, i)
		}
	}
	return out
}

// tick sends one write and two reads to each database.
func (c *client) tick() {
	w := c.w
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		ts := c.targets(g)
		if slices.ContainsFunc(ts, func(i *instance) bool { return c.servesAlone(i, c.w.excused[g.db]) }) {
			delete(c.w.excused, g.db)
		}
		c.checkWriters(g, ts)
		c.write(g, ts)
		if keys := c.keys[g.db]; len(keys) > 0 {
			c.read(g, ts, keys[len(keys)-1], true)
			c.read(g, ts, keys[c.w.rng.IntN(len(keys))], false)
		}
	}
}

// checkWriters is invariant single-writer: never two writers for one database.
func (c *client) checkWriters(g *group, ts []*instance) {
	var writers []string
	for _, i := range ts {
		if fenced, _ := i.vol.gate.Fenced(); !fenced {
			writers = append(writers, i.id+"/"+i.vol.id)
		}
	}
	if len(writers) > 1 {
		c.w.violate("invariant single-writer: database %s has two writers: %v", g.db, writers)
	}
}

// resolve follows a retired service's forwarding, as kvstore does: the
// instance that answers a request sent to i, or nil when a retired one's
// successor does not answer (the request fails with 503). broken says
// whether the simulator itself broke the successor that did not answer.
func (c *client) resolve(i *instance) (dst *instance, forwarded, broken bool) {
	dst, forwarded, broken, problem := c.follow(i)
	if problem != "" {
		c.w.violate("%s", problem)
	}
	return dst, forwarded, broken
}

// follow is resolve without the verdict: problem says what is wrong with
// the forwarding, if anything.
func (c *client) follow(i *instance) (dst *instance, forwarded, broken bool, problem string) {
	for hop := 0; hop <= fence.MaxForwardHops; hop++ {
		succ := i.vol.gate.Successor()
		if succ == "" {
			return i, hop > 0, false, ""
		}
		host, _, _ := net.SplitHostPort(succ)
		var next *instance
		for _, id := range slices.Sorted(maps.Keys(c.w.instances)) {
			if o := c.w.instances[id]; o.ip == host {
				next = o
			}
		}
		if next == nil {
			return nil, true, false, fmt.Sprintf("%s is retired to %s, which is no instance's address", i.id, succ)
		}
		if !next.answers(c.w) {
			return nil, true, next.broken || c.w.down[next.zone], ""
		}
		i = next
	}
	return nil, true, false, fmt.Sprintf("forwarding from %s loops", i.id)
}

// servesAlone reports whether a target other than the one a fault broke
// answers reads by itself: one that forwards to the broken instance does
// not, so it does not end the fault's excuse.
func (c *client) servesAlone(t *instance, excused string) bool {
	if t.id == excused {
		return false
	}
	dst, _, _, _ := c.follow(t)
	return dst != nil && dst.id != excused
}

func (c *client) write(g *group, ts []*instance) {
	if len(ts) == 0 {
		c.w.stats.WritesFailed++
		return
	}
	i, forwarded, _ := c.resolve(ts[c.w.rng.IntN(len(ts))])
	if i == nil {
		c.w.stats.WritesRefused++ // 503 + Retry-After: the client tries again later
		return
	}
	done, err := i.vol.gate.BeginWrite()
	if errors.Is(err, fence.ErrFenced) {
		c.w.stats.WritesRefused++
		return
	}
	if err != nil {
		c.w.violate("write gate failed on %s: %v", i.id, err)
		return
	}
	if forwarded {
		c.w.stats.WritesForwarded++
	}
	c.seq++
	key, val := "k"+strconv.Itoa(c.seq), i.id+"@"+c.w.clk.Now().Format(time.TimeOnly)
	// The service fsyncs before it acknowledges: the write is on the volume.
	i.vol.data[key] = val
	done()
	if c.acked[g.db] == nil {
		c.acked[g.db] = map[string]ackedWrite{}
	}
	c.acked[g.db][key] = ackedWrite{val: val, epoch: i.vol.epoch()}
	c.keys[g.db] = append(c.keys[g.db], key)
	c.newest[g.db] = max(c.newest[g.db], i.vol.epoch())
	c.w.stats.WritesAcked++
}

// read checks invariants reads-until-inservice (reads keep being served),
// no-stale-reads (no read answered from an older epoch's data once a newer
// one acknowledged a write; fresh says the key is the client's own latest
// write, read right after its ack) and, online, no-lost-ack (every
// acknowledged write is readable).
func (c *client) read(g *group, ts []*instance, key string, fresh bool) {
	if len(ts) == 0 {
		if c.w.excused[g.db] != "" {
			c.w.stats.ReadsFailedExcused++
			return
		}
		c.w.stats.ReadsFailed++
		var members []string
		for _, id := range g.members {
			i := c.w.instances[id]
			members = append(members, fmt.Sprintf("%s:%s/%s up=%v vol=%v unhealthy=%v unreachable=%v deregistered=%v", id, i.state, i.lifecycle, i.svcUp, i.vol != nil, i.unhealthy, i.unreachable, i.deregistered))
		}
		c.w.violate("invariant reads-until-inservice: no instance serves reads for database %s (members %v)", g.db, members)
		return
	}
	target := ts[c.w.rng.IntN(len(ts))]
	i, forwarded, broken := c.resolve(target)
	if i == nil {
		if broken || c.w.excused[g.db] != "" {
			c.w.stats.ReadsFailedExcused++
			return
		}
		c.w.stats.ReadsFailed++
		c.w.violate("invariant reads-until-inservice: %s is retired to a successor that does not answer, and the simulator broke neither", target.id)
		return
	}
	if forwarded {
		c.w.stats.ReadsForwarded++
	}
	want := c.acked[g.db][key]
	got := i.vol.data[key]
	switch {
	case fresh && got != want.val:
		// What the tenant of the field report saw: 404 for a write
		// acknowledged a moment ago.
		c.w.stats.StaleReads++
		c.w.violate("invariant no-stale-reads: read of its own write %s=%q (acknowledged under epoch %d) from %s (volume %s, epoch %d) returned %q",
			key, want.val, want.epoch, i.id, i.vol.id, i.vol.epoch(), got)
		return
	case i.vol.epoch() < c.newest[g.db]:
		// Stale even when the key read happens to be old enough to be
		// there.
		c.w.stats.StaleReads++
		c.w.violate("invariant no-stale-reads: read of %s answered by %s from epoch %d's data (volume %s) after a write was acknowledged under epoch %d",
			g.db, i.id, i.vol.epoch(), i.vol.id, c.newest[g.db])
		return
	case got != want.val:
		c.w.violate("invariant no-lost-ack: read of acknowledged %s=%q from %s (volume %s) returned %q", key, want.val, i.id, i.vol.id, got)
		return
	}
	c.w.stats.ReadsOK++
	if fresh {
		c.w.stats.FreshReadsOK++
	}
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
