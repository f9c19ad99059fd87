package demo

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TenantWrites writes to every database of a pool through the instance that
// holds it, as a tenant router in front of one-database-per-tenant
// instances would: it asks the controller which instance holds each
// database (GET /v1/databases), retries a write until one is acknowledged
// (a fenced source answers 503; the route is looked up again), and
// remembers every acknowledged write. It reads each acknowledged write back
// at once through the same route, and a reader per database keeps reading
// the newest one back through its own cached route, as a router's other
// connection would: a read answered from older data than an acknowledged
// write is a stale read (invariant no-stale-reads). Writes through the load balancer
// cannot be checked per tenant: any instance may answer them.
type TenantWrites struct {
	p      *Pool
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	acked     map[string][]ack // database → acknowledged writes, in order
	fresh     int              // reads of acknowledged writes that returned them
	stale     int              // reads of acknowledged writes that came back missing or old
	staleKeys []string
}

// StartTenantWrites starts one writer per database of the pool.
func (p *Pool) StartTenantWrites() *TenantWrites {
	ctx, cancel := context.WithCancel(context.Background())
	w := &TenantWrites{p: p, cancel: cancel, acked: map[string][]ack{}}
	hc := newClient()
	for i := int32(1); i <= p.opts.Databases; i++ {
		db := fmt.Sprintf("%s-%d", p.opts.Name, i)
		w.wg.Go(func() {
			addr := ""
			for n := 0; ctx.Err() == nil; n++ {
				k := fmt.Sprintf("t-%s-%06d", db, n)
				for ctx.Err() == nil {
					if addr == "" {
						addr, _ = p.route(ctx, db)
					}
					if addr != "" && put(ctx, hc, addr, k, value(k, 512)) == nil {
						w.mu.Lock()
						w.acked[db] = append(w.acked[db], ack{k, time.Now()})
						w.mu.Unlock()
						w.readBack(ctx, hc, db, addr, k)
						break
					}
					addr = "" // fenced, gone, or not yet placed: ask again
					sleep(ctx, 20*time.Millisecond)
				}
				sleep(ctx, 10*time.Millisecond)
			}
		})
		w.wg.Go(func() {
			addr := ""
			for ctx.Err() == nil {
				w.mu.Lock()
				acks := w.acked[db]
				w.mu.Unlock()
				if addr == "" {
					addr, _ = p.route(ctx, db)
				}
				if len(acks) > 0 && addr != "" && !w.readBack(ctx, hc, db, addr, acks[len(acks)-1].key) {
					addr = "" // no answer there: look the route up again
				}
				sleep(ctx, 20*time.Millisecond)
			}
		})
	}
	return w
}

// readBack reads an acknowledged write of db back from addr. It reports
// whether addr answered (a 503 or no answer is not a stale read; the
// caller may look the route up again).
func (w *TenantWrites) readBack(ctx context.Context, hc *http.Client, db, addr, key string) bool {
	code, body, err := get(ctx, hc, addr, key)
	if err != nil || ctx.Err() != nil || (code != http.StatusOK && code != http.StatusNotFound) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == http.StatusOK && string(body) == string(value(key, 512)) {
		w.fresh++
		return true
	}
	w.stale++
	if len(w.staleKeys) < 10 {
		w.staleKeys = append(w.staleKeys, fmt.Sprintf("%s/%s from %s (HTTP %d)", db, key, addr, code))
	}
	return true
}

// ackedKeys returns every acknowledged write, by database, in order.
func (w *TenantWrites) ackedKeys() map[string][]ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]ack, len(w.acked))
	for db, a := range w.acked {
		out[db] = slices.Clone(a)
	}
	return out
}

// Stop ends the writers and waits for them.
func (w *TenantWrites) Stop() {
	w.cancel()
	w.wg.Wait()
}

// route returns the address of the instance the ledger says holds db, ""
// when none does yet.
func (p *Pool) route(ctx context.Context, db string) (string, error) {
	dbs, err := p.e.API().Databases(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range dbs {
		if d.ID != db || d.Instance == "" {
			continue
		}
		out, err := p.e.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{d.Instance}})
		if err != nil {
			return "", err
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if in.PrivateIpAddress != nil {
					return fmt.Sprintf("http://%s:%d", *in.PrivateIpAddress, servicePort), nil
				}
			}
		}
	}
	return "", nil
}

// TenantResult is what the tenant writers saw.
type TenantResult struct {
	Acked int `json:"writes_acked"`
	Lost  int `json:"writes_lost"`
	// MaxPause is the longest gap between two acknowledged writes of one
	// database: that database's write pause, as its clients saw it.
	MaxPause time.Duration `json:"-"`
	LostKeys []string      `json:"lost,omitempty"`
	// FreshReads are reads of acknowledged writes that returned them;
	// StaleReads those that came back missing or old (must be 0).
	FreshReads int      `json:"fresh_reads"`
	StaleReads int      `json:"stale_reads"`
	StaleKeys  []string `json:"stale,omitempty"`
}

// Check reads every acknowledged write back from the instance that holds
// its database now.
func (w *TenantWrites) Check(ctx context.Context) (TenantResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := TenantResult{FreshReads: w.fresh, StaleReads: w.stale, StaleKeys: slices.Clone(w.staleKeys)}
	hc := newClient()
	dbs := make([]string, 0, len(w.acked))
	for db := range w.acked {
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	for _, db := range dbs {
		acks := w.acked[db]
		r.Acked += len(acks)
		for i := 1; i < len(acks); i++ {
			r.MaxPause = max(r.MaxPause, acks[i].at.Sub(acks[i-1].at))
		}
		addr, err := w.p.route(ctx, db)
		if err != nil || addr == "" {
			return r, fmt.Errorf("finding the instance that holds %s: %v", db, err)
		}
		for _, a := range acks {
			code, body, err := get(ctx, hc, addr, a.key)
			if err != nil {
				return r, fmt.Errorf("reading back %s from %s: %w", a.key, addr, err)
			}
			if code != http.StatusOK || string(body) != string(value(a.key, 512)) {
				r.Lost++
				r.LostKeys = append(r.LostKeys, db+"/"+a.key)
			}
		}
	}
	return r, nil
}
