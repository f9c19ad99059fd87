package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/handover-dev/handover/internal/logs/logstest"
)

// countingStore answers the pipeline's bulks as OpenSearch does (201 for
// a new id, 409 for a known one) and keeps only the ids: bleve would take
// hours to index the millions of lines of a 500 MB object, and what this
// test measures is the pipeline's memory, not the store's.
type countingStore struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	twice int
}

func (c *countingStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		_, _ = io.WriteString(w, `{"acknowledged":true}`)
		return
	}
	var items []string
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for action := true; sc.Scan(); action = !action {
		if !action {
			continue
		}
		var a struct {
			Create struct {
				ID string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		status := 201
		if _, ok := c.ids[a.Create.ID]; ok {
			status, c.twice = 409, c.twice+1
		}
		c.ids[a.Create.ID] = struct{}{}
		c.mu.Unlock()
		items = append(items, fmt.Sprintf(`{"create":{"_id":%q,"status":%d}}`, a.Create.ID, status))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"took":1,"errors":false,"items":[%s]}`, bytes.Join(func() [][]byte {
		out := make([][]byte, len(items))
		for i, s := range items {
			out[i] = []byte(s)
		}
		return out
	}(), []byte(",")))
}

func (c *countingStore) count() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids), c.twice
}

// A 500 MB object (HANDOVER_LOGS_BIG_MB sets the size; the test runs only
// when it is set, as `make test` must stay short): the daemon, a real
// process, streams it from the local cloud's S3 and indexes every line
// once, and its peak resident memory stays at a few bulks' worth whatever
// the size. Two shapes: a Classic log, plain text of that size as stored,
// and an ALB log of that size decompressed, in two gzip members.
func TestBigObject(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("HANDOVER_LOGS_BIG_MB"))
	if mb <= 0 {
		t.Skip("set HANDOVER_LOGS_BIG_MB=500 to run the big-object test")
	}
	for _, tc := range []struct {
		name string
		key  string
		gz   bool
	}{
		{"classic-plain", logstest.ClassicKey("big"), false},
		{"alb-gzip", logstest.ALBKey("big"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := logstest.Start(t, logstest.Options{Visibility: 30 * time.Second})
			path := filepath.Join(t.TempDir(), "object")
			want := int64(mb) << 20
			if !tc.gz && want >= maxStored {
				// The local cloud's S3 keeps objects in bbolt, whose
				// values stop short of 256 MiB.
				want = maxStored - 1<<20
				t.Logf("%s: %d MB instead of %d: the local cloud's S3 cannot store an object of 256 MiB or more", tc.name, want>>20, mb)
			}
			lines, size := writeBig(t, path, tc.gz, want)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			env.PutReader(t, tc.key, f)
			f.Close()
			store := &countingStore{ids: map[string]struct{}{}}
			srv := httptest.NewServer(store)
			defer srv.Close()

			start := time.Now()
			d := startDaemon(t, env, srv.URL)
			waitFor(t, "every line indexed and the queue empty", 30*time.Minute, func() bool {
				n, _ := store.count()
				return n == lines && env.Depth(t, env.QueueURL) == 0
			})
			took := time.Since(start)
			rss := d.peakRSS(t)
			if err := d.stop(t, syscall.SIGTERM); err != nil {
				t.Errorf("the daemon did not stop cleanly: %v", err)
			}
			n, twice := store.count()
			if n != lines || twice != 0 {
				t.Errorf("%d ids indexed, %d sent twice; want %d once each", n, twice, lines)
			}
			if d := env.Depth(t, env.DeadURL); d != 0 {
				t.Errorf("%d dead letters", d)
			}
			t.Logf("%s: object %.1f MB stored, %d MB of lines, %d lines in %v (%.0f MB/s of lines); daemon peak RSS %.1f MiB",
				tc.name, float64(st.Size())/(1<<20), size>>20, lines, took.Round(time.Second), float64(size)/(1<<20)/took.Seconds(), rss)
			if rss > 400 {
				t.Errorf("peak RSS %.1f MiB: memory is not bounded by the bulk size", rss)
			}
		})
	}
}

// maxStored bounds an object in the local cloud's S3 (bbolt's largest
// value).
const maxStored = 256 << 20

// writeBig writes log lines until their size reaches size; it returns how
// many lines and bytes of lines it wrote.
func writeBig(t *testing.T, path string, gz bool, size int64) (int, int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(bw)
		w = zw
	}
	chunk := logstest.ClassicLines(1000)
	if gz {
		chunk = logstest.ALBLines(1000)
	}
	// Trace ids differ line by line, as ALB's do, so the object compresses
	// as a real log does rather than a thousandfold.
	rng := rand.New(rand.NewPCG(1, 2))
	var traces []int
	if gz {
		trace := []byte("1d84f3d73c47ec4e58577259")
		for i := 0; ; i += len(trace) {
			j := bytes.Index(chunk[i:], trace)
			if j < 0 {
				break
			}
			i += j
			traces = append(traces, i)
		}
	}
	var n int
	var written int64
	split := false
	for written < size {
		if gz && !split && written >= size/2 {
			// A second gzip member half-way, as ALB may write.
			split = true
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			zw = gzip.NewWriter(bw)
			w = zw
		}
		for _, at := range traces {
			for k := range 24 {
				chunk[at+k] = "0123456789abcdef"[rng.IntN(16)]
			}
		}
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		n += 1000
		written += int64(len(chunk))
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return n, written
}
