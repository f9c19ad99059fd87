package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/logs"
	"github.com/handover-dev/handover/internal/logs/logstest"
)

// peakBound is the "memory bounded" check of the fault tests: the
// daemon's peak RSS under a fault must stay under what TestBigObject
// allows for a 500 MB object. A generous bound, not a measurement.
const peakBound = 400.0 // MiB

// wantIDs is the id of every line of the objects: the hash of the
// bucket ARN and key, then the line's byte offset in the decompressed
// object (see logs.DocID).
func wantIDs(objects map[string][]byte) map[string]bool {
	ids := map[string]bool{}
	for key, text := range objects {
		base := logs.DocID(logstest.Bucket, key)
		for off := 0; off < len(text); {
			n := bytes.IndexByte(text[off:], '\n')
			if n < 0 {
				n = len(text) - off - 1
			}
			if n > 0 {
				ids[fmt.Sprintf("%s-%d", base, off)] = true
			}
			off += n + 1
		}
	}
	return ids
}

// checkIDs asks the store for the documents of every id wanted: each
// must be there once, and the store must hold nothing else.
func checkIDs(t *testing.T, env *logstest.Env, want map[string]bool) {
	t.Helper()
	values := make([]string, 0, len(want))
	for id := range want {
		values = append(values, id)
	}
	q, _ := json.Marshal(map[string]any{"query": map[string]any{"ids": map[string]any{"values": values}}, "size": len(values), "_source": false})
	resp, err := http.Post(env.Endpoint+"/elb-logs-*/_search", "application/json", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("searching the ids: %v %s", err, resp.Status)
	}
	seen := map[string]int{}
	for _, h := range r.Hits.Hits {
		seen[h.ID]++
	}
	missing, twice := 0, 0
	for id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 || len(r.Hits.Hits) != len(want) {
		t.Errorf("of %d lines' ids, %d missing, %d found more than once, %d hits", len(want), missing, twice, len(r.Hits.Hits))
	}
	if n := env.Count(t); n != int64(len(want)) {
		t.Errorf("the store holds %d documents, want %d", n, len(want))
	}
}

// `handover logs run` as a process under the store's faults: 429 for 30 %
// of the items all through, and a storm of 500s on every bulk for a
// while in the middle of the files, then the store well again. Each time
// every line is indexed exactly once (the ids of the store are exactly
// the lines'), nothing is dead-lettered, the daemon recovered by itself
// (its retries metric counts the resent items) and its peak RSS is
// reported and bounded.
func TestDaemonUnderStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before is on from the start; during comes once some lines are
		// indexed, for stormFor, then every fault is cleared.
		before, during string
	}{
		{name: "429-30pct", before: `{"service":"es","action":"BulkItem","kind":"throttle","rate":0.3}`},
		{name: "5xx-storm", before: `{"service":"es","action":"Bulk","kind":"latency","delay":"50ms"}`,
			during: `{"service":"es","action":"Bulk","kind":"error"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := logstest.Start(t, logstest.Options{Visibility: 30 * time.Second})
			env.Fault(t, tc.before)
			a, b := logstest.ALBLines(500), logstest.ALBLines(400)
			alb := append(append([]byte{}, a...), b...)
			classic := logstest.ClassicLines(100)
			objects := map[string][]byte{logstest.ALBKey("faults"): alb, logstest.ClassicKey("faults"): classic}
			env.Put(t, logstest.ALBKey("faults"), logstest.Gzip(a, b))
			env.Put(t, logstest.ClassicKey("faults"), classic)
			want := wantIDs(objects)
			if len(want) != 1000 {
				t.Fatalf("%d ids for 1000 lines", len(want))
			}

			d := startDaemon(t, env, env.Endpoint, "--bulk-bytes", "32768")
			if tc.during != "" {
				waitFor(t, "some lines indexed before the storm", 2*time.Minute, func() bool { return env.Count(t) >= 100 })
				env.Fault(t, tc.during)
				before := env.Count(t)
				start := time.Now()
				// The storm lasts until the daemon has resent whole
				// bulks three times (0.2 + 0.4 + 0.8 s of backoff at
				// least) and two seconds have passed.
				waitFor(t, "the daemon retrying in the storm", time.Minute, func() bool {
					return d.metric(t, "handover_logs_retries_total") > 0 && time.Since(start) > 2*time.Second
				})
				if env.Count(t) == int64(len(want)) {
					t.Fatalf("every line indexed before the storm took hold (%d then); the test wants it mid-file", before)
				}
				t.Logf("storm of 500s on every bulk for %v, %d of %d lines indexed when it began", time.Since(start).Round(100*time.Millisecond), before, len(want))
				env.ClearFaults(t)
			}
			waitFor(t, "every line indexed and the queue empty", 3*time.Minute, func() bool {
				return env.Count(t) == int64(len(want)) && env.Depth(t, env.QueueURL) == 0
			})
			retries := d.metric(t, "handover_logs_retries_total")
			if retries == 0 {
				t.Errorf("no item retried under %s", tc.name)
			}
			peak := d.peakRSS(t)
			t.Logf("%s: %d lines, %v items retried, %v dead letters; daemon peak RSS (VmHWM) %.1f MiB", tc.name, len(want), retries,
				d.metric(t, `handover_logs_dead_letters_total{cause="unparseable-line"}`), peak)
			if peak > peakBound {
				t.Errorf("daemon peak RSS %.1f MiB, over the bound of %.0f MiB", peak, peakBound)
			}
			if err := d.stop(t, syscall.SIGTERM); err != nil {
				t.Errorf("the daemon did not stop cleanly on SIGTERM: %v", err)
			}
			if strings.Contains(d.output(), "level=ERROR") {
				t.Logf("the daemon logged errors (objects given back to the queue):\n%s", d.output())
			}
			checkIDs(t, env, want)
			if n := env.Depth(t, env.DeadURL); n != 0 {
				t.Errorf("%d dead letters", n)
			}
		})
	}
}
