package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/readahead"

	"github.com/handover-dev/handover/internal/clock"
)

// ItemResult is the outcome of one bulk item.
type ItemResult struct {
	Status int
	Type   string
	Reason string
}

// Bulker sends bulk requests to the store.
type Bulker interface {
	// Bulk sends one NDJSON body of create actions and returns one result
	// per item, in order. An error means the request as a whole failed;
	// IsRetryable tells whether sending it again may succeed. Repeating a
	// body is safe: its creates of ids that exist answer 409.
	Bulk(ctx context.Context, body []byte) ([]ItemResult, error)
}

// ObjectStore reads log objects.
type ObjectStore interface {
	// Get opens the object for streaming. A missing object is an error
	// wrapping ErrNoObject.
	Get(ctx context.Context, bucket, key string) (io.ReadCloser, error)
}

// ErrNoObject is wrapped by ObjectStore.Get for a key that does not exist.
var ErrNoObject = errors.New("no such object")

// DeadLetter is a line (Offset ≥ 0) or a whole object (Offset -1, or the
// offset where reading stopped) that could not be indexed, and why.
type DeadLetter struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Offset int64  `json:"offset"`
	// Cause is one of the Cause… constants: what to count and alert on.
	Cause  string `json:"cause"`
	Reason string `json:"reason"`
	Line   string `json:"line,omitempty"`
}

// Causes of dead letters, few and stable (metric labels).
const (
	CauseUnparseable     = "unparseable-line"
	CauseLineTooLong     = "line-too-long"
	CauseRefused         = "refused-by-store"
	CauseNotELB          = "not-an-elb-log"
	CauseMissing         = "missing-object"
	CauseBinary          = "binary-object"
	CauseCorrupt         = "corrupt-object"
	CauseNotNotification = "not-a-notification"
)

// Observer is told what counters cannot say; Metrics is one. Calls must
// not block.
type Observer interface {
	// DeadLettered counts n letters of one cause, once they are stored.
	DeadLettered(cause string, n int)
	// ObjectIndexed reports an object done, lag after S3 said it was
	// created (negative when that is unknown, as in a replay).
	ObjectIndexed(format string, lag time.Duration)
}

type noObserver struct{}

func (noObserver) DeadLettered(string, int)            {}
func (noObserver) ObjectIndexed(string, time.Duration) {}

// DeadLetters keeps what could not be indexed.
type DeadLetters interface {
	// Send stores the letters; only once it returns nil may the object
	// they come from be acknowledged. Repeating it stores them again.
	Send(ctx context.Context, letters []DeadLetter) error
}

// RetryableError marks a whole-request failure that may succeed if sent
// again (429, 5xx, a connection error).
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth sending again.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

// Config configures a Pipeline.
type Config struct {
	// IndexPrefix names the daily indices: PREFIX-YYYY.MM.DD.
	IndexPrefix string
	// BulkBytes bounds a bulk request's body (default 5 MiB).
	BulkBytes int
	// MaxLineBytes is the longest line read (default 256 KiB); longer
	// lines go to the dead letters.
	MaxLineBytes int
	// ConnectionLogs indexes ALB connection logs into
	// PREFIX-connections-YYYY.MM.DD instead of skipping them.
	ConnectionLogs bool
	// MaxAttempts bounds how often one bulk is sent while items are still
	// throttled (default 10); then the object fails, to come back later.
	MaxAttempts int
	// Backoff is the first retry's delay (default 200ms), doubled each
	// time up to MaxBackoff (default 20s), with jitter.
	Backoff, MaxBackoff time.Duration
	// Sleep waits between retries (tests replace it).
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
	// Observer is told of dead letters and of objects done (metrics).
	Observer Observer
	// Clock measures lag (default the wall clock).
	Clock clock.Clock
	Seed  uint64
	// ParseWorkers is how many goroutines parse and encode the lines of
	// one object (default GOMAXPROCS, at most 4; 1 is the one-goroutine
	// loop). With more than one, gunzip and
	// line splitting run on a goroutine of their own and the results are
	// put back in order: ids, offsets, bulks and dead letters are the
	// same as with one.
	ParseWorkers int
}

func (c *Config) defaults() {
	if c.IndexPrefix == "" {
		c.IndexPrefix = "elb-logs"
	}
	if c.BulkBytes <= 0 {
		c.BulkBytes = 5 << 20
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = 256 << 10
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 20 * time.Second
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.ParseWorkers <= 0 {
		// At most four: each worker keeps two chunks of up to
		// MaxLineBytes + 256 KiB in flight, per object.
		c.ParseWorkers = min(runtime.GOMAXPROCS(0), 4)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pipeline indexes log objects. It is safe for concurrent use.
type Pipeline struct {
	cfg   Config
	store ObjectStore
	bulk  Bulker
	dead  DeadLetters
	Stats Stats
	// chunks pools the parallel path's chunks (split.go) across objects,
	// bufs the bulk bodies: allocating and zeroing 5 MiB for each object
	// was a measurable share of a small object's time.
	chunks, bufs, spans sync.Pool
}

// bulkBuf is a bulk body's buffer, from the pool when one is there.
func (p *Pipeline) bulkBuf() []byte {
	if b, ok := p.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, p.cfg.BulkBytes+p.cfg.MaxLineBytes*2)
}

func (p *Pipeline) putBulkBuf(b []byte) {
	if cap(b) >= p.cfg.BulkBytes && cap(b) <= 2*(p.cfg.BulkBytes+p.cfg.MaxLineBytes*2) {
		p.bufs.Put(&b)
	}
}

// Stats are running totals, read with atomic loads.
type Stats struct {
	Objects, Skipped, Lines, Bytes, Indexed, Duplicates, DeadLettered, Retries atomic.Int64
}

// New returns a pipeline.
func New(cfg Config, store ObjectStore, bulk Bulker, dead DeadLetters) *Pipeline {
	cfg.defaults()
	return &Pipeline{cfg: cfg, store: store, bulk: bulk, dead: dead}
}

// Result is what one ProcessObject did.
type Result struct {
	Format       string `json:"format"`
	Skipped      string `json:"skipped,omitempty"`
	Lines        int64  `json:"lines"`
	Indexed      int64  `json:"indexed"`
	Duplicates   int64  `json:"duplicates"`
	DeadLettered int64  `json:"dead_lettered"`
	Retries      int64  `json:"retries"`
	// Next is where to go on when Done is false (stop said so, or an
	// error came): every line before it is indexed or dead-lettered.
	Next int64 `json:"next"`
	Done bool  `json:"done"`
}

// Object names an object and where in its (decompressed) content to
// start.
type Object struct {
	Bucket, Key string
	From        int64
	// EventTime is when S3 said the object was created (zero when
	// unknown, as in a replay); lag is measured from it.
	EventTime time.Time
}

// ProcessObject indexes every line of the object from o.From on. stop,
// when not nil, is asked after each bulk; when it says true the object is
// left at a line boundary and Result.Next says where to go on. An error
// means the object must be processed again later (its message not
// acknowledged); what was indexed stays indexed and comes back as 409s.
// Even then Result.Next says up to where every line is indexed or
// dead-lettered, so a caller out of time may hand on the rest from there.
func (p *Pipeline) ProcessObject(ctx context.Context, o Object, stop func() bool) (Result, error) {
	res := Result{Next: o.From}
	kind, err := DetectKey(o.Key, p.cfg.ConnectionLogs)
	if err != nil {
		res.Done = true
		res.Skipped = "not an ELB log"
		return res, p.deadObject(ctx, o, CauseNotELB, err.Error(), &res)
	}
	res.Format = kind.Format.String()
	if kind.Skip != "" {
		res.Skipped, res.Done = kind.Skip, true
		p.Stats.Skipped.Add(1)
		p.cfg.Logger.Debug("log object skipped", "bucket", o.Bucket, "key", o.Key, "reason", kind.Skip)
		return res, nil
	}
	body, err := p.store.Get(ctx, o.Bucket, o.Key)
	if errors.Is(err, ErrNoObject) {
		res.Done = true
		return res, p.deadObject(ctx, o, CauseMissing, "the object does not exist (deleted before it was read?): "+err.Error(), &res)
	}
	if err != nil {
		return res, fmt.Errorf("reading s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	defer body.Close()
	p.Stats.Objects.Add(1)
	w := &work{p: p, o: o, res: &res, format: kind.Format, base: DocID(o.Bucket, o.Key), object: "s3://" + o.Bucket + "/" + o.Key}
	if items, ok := p.spans.Get().(*[]span); ok {
		w.items = *items
	}
	w.objField = objectField(w.object)
	w.prefix = p.cfg.IndexPrefix
	if kind.Format == FormatConnection {
		w.prefix += "-connections"
	}
	err = w.run(ctx, body, stop)
	p.putBulkBuf(w.buf)
	p.putBulkBuf(w.spare)
	if cap(w.items) > 0 {
		items := w.items[:0]
		p.spans.Put(&items)
	}
	if err == nil && res.Done {
		lag := time.Duration(-1)
		if !o.EventTime.IsZero() {
			lag = p.cfg.Clock.Now().Sub(o.EventTime)
		}
		p.cfg.Observer.ObjectIndexed(res.Format, lag)
	}
	return res, err
}

func (p *Pipeline) deadObject(ctx context.Context, o Object, cause, reason string, res *Result) error {
	if err := p.sendDead(ctx, []DeadLetter{{Bucket: o.Bucket, Key: o.Key, Offset: -1, Cause: cause, Reason: reason}}); err != nil {
		return fmt.Errorf("sending s3://%s/%s to the dead letters: %w", o.Bucket, o.Key, err)
	}
	res.DeadLettered++
	p.cfg.Logger.Warn("log object dead-lettered", "bucket", o.Bucket, "key", o.Key, "cause", cause, "reason", reason)
	return nil
}

// sendDead stores letters, then counts them.
func (p *Pipeline) sendDead(ctx context.Context, letters []DeadLetter) error {
	if err := p.dead.Send(ctx, letters); err != nil {
		return err
	}
	p.Stats.DeadLettered.Add(int64(len(letters)))
	for _, l := range letters {
		p.cfg.Observer.DeadLettered(l.Cause, 1)
	}
	return nil
}

// span is one item of the bulk being built.
type span struct {
	start, end int
	offset     int64
}

type work struct {
	p        *Pipeline
	o        Object
	res      *Result
	format   Format
	base     string
	object   string
	objField []byte // the documents' log_object member, encoded once
	// lines and bytes parsed since the last flush, for Stats.
	lines, bytes int64
	prefix       string

	line  Line
	buf   []byte
	items []span
	spare []byte
	dead  []DeadLetter
}

// gzipReadAhead is how many 256 KiB buffers of decompressed text a
// goroutine keeps ready ahead of the parser (0: gunzip inline; the
// benchmarks compare both).
var gzipReadAhead = 4

// gzipMagic starts every gzip member.
var gzipMagic = []byte{0x1f, 0x8b}

// NewGzipReader reads every member of a (possibly concatenated) gzip
// stream. klauspost/compress measured faster than compress/gzip here
// (bench/logs).
var NewGzipReader = func(r io.Reader) (io.ReadCloser, error) {
	zr, err := kgzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	zr.Multistream(true)
	return zr, nil
}

func (w *work) run(ctx context.Context, body io.Reader, stop func() bool) error {
	cfg := &w.p.cfg
	raw := bufio.NewReaderSize(body, 64<<10)
	var r io.Reader = raw
	parallel := cfg.ParseWorkers > 1
	if head, _ := raw.Peek(2); bytes.Equal(head, gzipMagic) {
		zr, err := NewGzipReader(raw)
		if err != nil {
			return w.deadAndFlush(ctx, -1, CauseCorrupt, "the object starts as gzip but its header is unreadable: "+err.Error())
		}
		defer zr.Close()
		r = zr
		if gzipReadAhead > 0 && !parallel {
			// Gunzip on a goroutine of its own, a bounded 4 × 256 KiB
			// ahead of the parser, so decompression and parse + encode
			// overlap when another core is free (bench/logs). The
			// parallel path gunzips on its splitter goroutine instead.
			ra, err := readahead.NewReaderSize(zr, gzipReadAhead, 256<<10)
			if err != nil {
				return fmt.Errorf("reading ahead of the gzip stream: %w", err)
			}
			defer ra.Close()
			r = ra
		}
	}
	if parallel {
		// A small buffer for the check below: the splitter then reads
		// straight into its chunks.
		br := bufio.NewReaderSize(r, 4096)
		// As far as the serial loop's buffer looks (Peek(512) of a
		// smaller one sees less).
		if head, _ := br.Peek(min(512, cfg.MaxLineBytes)); bytes.IndexByte(head, 0) >= 0 {
			return w.deadAndFlush(ctx, -1, CauseBinary, "the object is binary (neither text nor gzip-compressed text): not an ELB access log")
		}
		return w.runParallel(ctx, br, cfg.ParseWorkers, stop)
	}
	// Wrapped so that bufio never hands back raw itself (it does when raw
	// is large enough), whose 64 KiB would be the line limit instead.
	br := bufio.NewReaderSize(struct{ io.Reader }{r}, cfg.MaxLineBytes)
	if head, _ := br.Peek(512); bytes.IndexByte(head, 0) >= 0 {
		return w.deadAndFlush(ctx, -1, CauseBinary, "the object is binary (neither text nor gzip-compressed text): not an ELB access log")
	}
	w.buf = w.p.bulkBuf()
	var offset int64
	for {
		line, err := br.ReadSlice('\n')
		start := offset
		offset += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: dead-letter it whole and
			// skip to its end.
			head := append([]byte(nil), clipBytes(line, 256)...)
			for errors.Is(err, bufio.ErrBufferFull) {
				var more []byte
				more, err = br.ReadSlice('\n')
				offset += int64(len(more))
			}
			// One before From was dead-lettered by the run that
			// handed the rest of the object on.
			if start >= w.o.From {
				w.res.Lines++
				w.dead = append(w.dead, w.longLetter(start, head))
			}
			line = nil // its bytes are gone; the bulk's size is looked at below
		}
		if err != nil && err != io.EOF {
			if len(line) > 0 && start >= w.o.From { // a line, counted as the others are
				w.res.Lines++
			}
			return w.deadAndFlush(ctx, start, CauseCorrupt, fmt.Sprintf("reading stopped at byte %d of the content: %v (a truncated or corrupt object; the lines before it are indexed)", start, err))
		}
		if start >= w.o.From && len(bytes.TrimSpace(line)) > 0 {
			w.res.Lines++
			w.add(line, start)
		}
		if len(w.buf) >= cfg.BulkBytes || len(w.dead) >= 500 || err == io.EOF {
			if ferr := w.flush(ctx); ferr != nil {
				return ferr
			}
			w.res.Next = max(offset, w.o.From)
			if err == io.EOF {
				w.res.Done, w.res.Next = true, offset
				return nil
			}
			if stop != nil && stop() {
				return nil
			}
		}
	}
}

// add parses one line and appends its action and document to the bulk,
// or dead-letters it.
func (w *work) add(line []byte, offset int64) {
	text := bytes.TrimRight(line, "\r\n")
	if err := w.line.Parse(w.format, text); err != nil {
		w.deadLine(offset, CauseUnparseable, err.Error(), text)
		return
	}
	start := len(w.buf)
	w.buf = AppendAction(w.buf, &w.line, w.prefix, w.base, offset)
	w.buf = appendDoc(w.buf, &w.line, w.objField, offset)
	w.buf = append(w.buf, '\n')
	w.items = append(w.items, span{start, len(w.buf), offset})
	// Counted here, added to the shared Stats once a bulk: an atomic
	// add per line is a measurable share of the line's time.
	w.lines++
	w.bytes += int64(len(line))
}

func (w *work) deadLine(offset int64, cause, reason string, line []byte) {
	w.dead = append(w.dead, DeadLetter{Bucket: w.o.Bucket, Key: w.o.Key, Offset: offset, Cause: cause, Reason: reason, Line: string(clipBytes(line, 4096))})
}

func clipBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func (w *work) deadAndFlush(ctx context.Context, offset int64, cause, reason string) error {
	w.dead = append(w.dead, DeadLetter{Bucket: w.o.Bucket, Key: w.o.Key, Offset: offset, Cause: cause, Reason: reason})
	if err := w.flush(ctx); err != nil {
		return err
	}
	w.res.Done = true
	return nil
}

// flush sends the bulk, resending only its throttled and failed (429,
// 5xx) items with backoff, and dead-letters items refused for other
// reasons, then stores the dead letters.
func (w *work) flush(ctx context.Context) error {
	cfg := &w.p.cfg
	w.p.Stats.Lines.Add(w.lines)
	w.p.Stats.Bytes.Add(w.bytes)
	w.lines, w.bytes = 0, 0
	for attempt := 1; len(w.items) > 0; attempt++ {
		results, err := w.p.bulk.Bulk(ctx, w.buf)
		if err == nil && len(results) != len(w.items) {
			err = fmt.Errorf("the store answered %d items for a bulk of %d", len(results), len(w.items))
		}
		var retry []span
		last := ""
		if err != nil {
			if !IsRetryable(err) || attempt >= cfg.MaxAttempts {
				return fmt.Errorf("indexing lines of %s (attempt %d): %w", w.object, attempt, err)
			}
			retry, last = w.items, err.Error()
		} else {
			var indexed, dups int64
			for i, r := range results {
				it := w.items[i]
				switch {
				case r.Status >= 200 && r.Status < 300:
					indexed++
				case r.Status == 409:
					dups++ // indexed by an earlier delivery
				case r.Status == 429 || r.Status >= 500:
					retry = append(retry, it)
					last = fmt.Sprintf("%d %s: %s", r.Status, r.Type, r.Reason)
				default:
					w.dead = append(w.dead, DeadLetter{Bucket: w.o.Bucket, Key: w.o.Key, Offset: it.offset, Cause: CauseRefused,
						Reason: fmt.Sprintf("the store refused the document: %d %s: %s", r.Status, r.Type, r.Reason), Line: string(clipBytes(w.buf[it.start:it.end], 4096))})
				}
			}
			w.res.Indexed += indexed
			w.res.Duplicates += dups
			w.p.Stats.Indexed.Add(indexed)
			w.p.Stats.Duplicates.Add(dups)
		}
		if len(retry) == 0 {
			break
		}
		if attempt >= cfg.MaxAttempts {
			return fmt.Errorf("indexing %s: %d items still failing after %d attempts (last: %s); the object will be processed again", w.object, len(retry), attempt, last)
		}
		w.res.Retries += int64(len(retry))
		w.p.Stats.Retries.Add(int64(len(retry)))
		// Rebuild the body from the failed items only.
		w.spare = w.spare[:0]
		for i, it := range retry {
			n := len(w.spare)
			w.spare = append(w.spare, w.buf[it.start:it.end]...)
			retry[i] = span{n, len(w.spare), it.offset}
		}
		w.buf, w.spare = w.spare, w.buf
		w.items = append(w.items[:0], retry...)
		d := backoff(cfg, attempt)
		cfg.Logger.Debug("bulk items throttled, retrying", "object", w.object, "items", len(retry), "attempt", attempt, "delay", d, "last", last)
		if err := cfg.Sleep(ctx, d); err != nil {
			return fmt.Errorf("indexing %s: %w", w.object, err)
		}
	}
	w.buf, w.items = w.buf[:0], w.items[:0]
	if len(w.dead) > 0 {
		if err := w.p.sendDead(ctx, w.dead); err != nil {
			return fmt.Errorf("sending %d dead letters of %s: %w", len(w.dead), w.object, err)
		}
		w.res.DeadLettered += int64(len(w.dead))
		w.dead = w.dead[:0]
	}
	return nil
}

// backoff is the delay before retry attempt: exponential, capped, with
// jitter in [d/2, d) so throttled pipelines spread out.
func backoff(cfg *Config, attempt int) time.Duration {
	d := cfg.Backoff << min(attempt-1, 20)
	if d > cfg.MaxBackoff || d <= 0 {
		d = cfg.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
