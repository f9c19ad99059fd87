package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The parallel path of one object: a splitter goroutine reads the
// (decompressed) stream — gunzipping on it, so decompression has a
// goroutine of its own — into pooled chunks of whole lines; workers parse
// and encode chunks; the caller's goroutine takes the chunks back in
// order and builds the bulks exactly as the serial loop does, line by
// line, so ids, offsets, bulk boundaries, Next and the dead letters are
// the same (TestParallelMatchesSerial, FuzzParallelMatchesSerial).

// chunkTarget is how many bytes of lines a chunk holds at least (beyond
// the partial line carried into it); a chunk's buffer is MaxLineBytes
// more, so the partial line at its end always fits.
var chunkTarget = 256 << 10

// rec is one line of a chunk that adds to the bulk: a document (dead < 0,
// its bytes buf[start:end]) or a dead letter (dead is its index).
type rec struct {
	start, end   int
	offset, next int64 // where the line starts and ends in the content
	dead         int32
}

// chunk is a run of whole lines and, once a worker is done with it, what
// they add to the bulk; or the end of the content.
type chunk struct {
	data   []byte // whole lines; the last lacks '\n' only at the end
	offset int64  // of data[0] in the content

	// end: the content ends here, with err (io.EOF, or why reading
	// stopped at offset; partial says a piece of a line was read).
	end     bool
	err     error
	partial bool

	buf  []byte
	recs []rec
	dead []DeadLetter
	done chan struct{} // a worker has filled buf, recs and dead
	mem  []byte        // data's whole buffer
}

func (w *work) chunkSize() int { return w.p.cfg.MaxLineBytes + chunkTarget }

func (w *work) newChunk() *chunk {
	if c, ok := w.p.chunks.Get().(*chunk); ok && len(c.mem) == w.chunkSize() {
		return c
	}
	// Room for the chunk's documents, about 1.5 times its lines: grown
	// by append instead, it was most of the pipeline's allocations.
	return &chunk{mem: make([]byte, w.chunkSize()), buf: make([]byte, 0, 2*w.chunkSize()), done: make(chan struct{}, 1)}
}

func (w *work) putChunk(c *chunk) {
	c.data, c.end, c.err, c.partial = nil, false, nil, false
	c.buf, c.recs = c.buf[:0], c.recs[:0]
	clear(c.dead)
	c.dead = c.dead[:0]
	w.p.chunks.Put(c)
}

// runParallel is run's loop for workers > 1 goroutines of parse + encode.
func (w *work) runParallel(ctx context.Context, r io.Reader, workers int, stop func() bool) error {
	w.buf = w.p.bulkBuf()
	// At most inflight chunks exist at once: memory stays bounded
	// whatever the object's size.
	inflight := 2*workers + 2
	free := make(chan struct{}, inflight)
	for range inflight {
		free <- struct{}{}
	}
	jobs := make(chan *chunk, inflight)
	order := make(chan *chunk, inflight)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(quit)
		wg.Wait()
		for c := range order { // not merged: back to the pool
			if !c.end {
				<-c.done
			}
			w.putChunk(c)
		}
	}()
	wg.Add(1 + workers)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		w.split(r, free, jobs, order, quit)
	}()
	for range workers {
		go func() {
			defer wg.Done()
			var l Line
			for c := range jobs {
				w.encodeChunk(&l, c)
				c.done <- struct{}{}
			}
		}()
	}
	for c := range order {
		if c.end {
			if c.err == io.EOF {
				if err := w.flush(ctx); err != nil {
					return err
				}
				w.res.Done, w.res.Next = true, c.offset
				return nil
			}
			if c.partial && c.offset >= w.o.From {
				w.res.Lines++
			}
			return w.deadAndFlush(ctx, c.offset, CauseCorrupt, fmt.Sprintf("reading stopped at byte %d of the content: %v (a truncated or corrupt object; the lines before it are indexed)", c.offset, c.err))
		}
		<-c.done
		stopped, err := w.merge(ctx, c, stop)
		w.putChunk(c)
		free <- struct{}{}
		if err != nil || stopped {
			return err
		}
	}
	return errors.New("the line splitter stopped without an end") // not reached
}

// merge adds a chunk's lines to the bulk, flushing where the serial loop
// would. stopped says stop asked to leave the object.
func (w *work) merge(ctx context.Context, c *chunk, stop func() bool) (stopped bool, err error) {
	cfg := &w.p.cfg
	for i := range c.recs {
		r := &c.recs[i]
		w.res.Lines++
		if r.dead >= 0 {
			w.dead = append(w.dead, c.dead[r.dead])
		} else {
			start := len(w.buf)
			w.buf = append(w.buf, c.buf[r.start:r.end]...)
			w.items = append(w.items, span{start, len(w.buf), r.offset})
			w.lines++
			w.bytes += r.next - r.offset
		}
		if len(w.buf) < cfg.BulkBytes && len(w.dead) < 500 {
			continue
		}
		if err := w.flush(ctx); err != nil {
			return false, err
		}
		w.res.Next = max(r.next, w.o.From)
		if stop != nil && stop() {
			return true, nil
		}
	}
	return false, nil
}

// encodeChunk parses and encodes a chunk's lines (on a worker), as add
// does for one line.
func (w *work) encodeChunk(l *Line, c *chunk) {
	maxLine := w.p.cfg.MaxLineBytes
	data := c.data
	for pos := 0; pos < len(data); {
		line := data[pos:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j+1]
		}
		start := c.offset + int64(pos)
		pos += len(line)
		if start < w.o.From || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		next := start + int64(len(line))
		if len(line) > maxLine {
			c.recs = append(c.recs, rec{offset: start, next: next, dead: int32(len(c.dead))})
			c.dead = append(c.dead, w.longLetter(start, line))
			continue
		}
		text := bytes.TrimRight(line, "\r\n")
		if err := l.Parse(w.format, text); err != nil {
			c.recs = append(c.recs, rec{offset: start, next: next, dead: int32(len(c.dead))})
			c.dead = append(c.dead, DeadLetter{Bucket: w.o.Bucket, Key: w.o.Key, Offset: start, Cause: CauseUnparseable, Reason: err.Error(), Line: string(clipBytes(text, 4096))})
			continue
		}
		s := len(c.buf)
		c.buf = AppendAction(c.buf, l, w.prefix, w.base, start)
		c.buf = appendDoc(c.buf, l, w.objField, start)
		c.buf = append(c.buf, '\n')
		c.recs = append(c.recs, rec{start: s, end: len(c.buf), offset: start, next: next, dead: -1})
	}
}

func (w *work) longLetter(offset int64, head []byte) DeadLetter {
	return DeadLetter{Bucket: w.o.Bucket, Key: w.o.Key, Offset: offset, Cause: CauseLineTooLong,
		Reason: fmt.Sprintf("the line is longer than %d bytes", w.p.cfg.MaxLineBytes), Line: string(clipBytes(head, min(256, w.p.cfg.MaxLineBytes)))}
}

// split reads r into chunks of whole lines, in order, to the workers
// (jobs) and to the merger (order), taking a token from free for each.
// A line of MaxLineBytes or more without its end becomes a chunk of one
// dead letter; the content's end (or a read error) a last chunk.
func (w *work) split(r io.Reader, free chan struct{}, jobs, order chan<- *chunk, quit <-chan struct{}) {
	maxLine := w.p.cfg.MaxLineBytes
	send := func(c *chunk, work bool) bool {
		if work {
			select {
			case jobs <- c:
			case <-quit:
				w.putChunk(c)
				return false
			}
		}
		select {
		case order <- c:
			return true
		case <-quit:
			if work {
				<-c.done
			}
			w.putChunk(c)
			return false
		}
	}
	take := func() *chunk {
		select {
		case <-free:
			return w.newChunk()
		case <-quit:
			return nil
		}
	}
	end := func(offset int64, err error, partial bool) {
		send(&chunk{end: true, offset: offset, err: err, partial: partial}, false)
	}
	// emit sends buf[:n] as a chunk at offset (when not empty) and
	// returns a new chunk holding buf[n:filled].
	c := take()
	if c == nil {
		return
	}
	var offset int64 // of c.mem[0]
	filled := 0
	emit := func(n int) bool {
		if n == 0 {
			return true
		}
		next := take()
		if next == nil {
			w.putChunk(c)
			return false
		}
		filled = copy(next.mem, c.mem[n:filled])
		c.data, c.offset = c.mem[:n], offset
		offset += int64(n)
		ok := send(c, true)
		c = next
		if !ok {
			w.putChunk(c)
		}
		return ok
	}
	for {
		n, err := r.Read(c.mem[filled:])
		filled += n
		lines := bytes.LastIndexByte(c.mem[:filled], '\n') + 1
		if err != nil && err != io.EOF {
			if !emit(lines) {
				return
			}
			w.putChunk(c)
			end(offset, err, filled > 0)
			return
		}
		if filled-lines >= maxLine {
			// A line too long: send what comes before it, then skip
			// to its end.
			if !emit(lines) {
				return
			}
			head := append([]byte(nil), c.mem[:min(256, filled)]...)
			start := offset
			rest, skipped, err := skipLine(r, c.mem, filled, err)
			offset += skipped
			w.putChunk(c)
			long := &chunk{offset: start, done: make(chan struct{}, 1)}
			long.recs = []rec{{offset: start, next: offset, dead: 0}}
			if start < w.o.From {
				long.recs = nil
			} else {
				long.dead = []DeadLetter{w.longLetter(start, head)}
			}
			long.done <- struct{}{}
			if !send(long, false) {
				return
			}
			if err != nil && err != io.EOF {
				end(start, err, false)
				return
			}
			if c = take(); c == nil {
				return
			}
			filled = copy(c.mem, rest)
			if err == io.EOF && filled == 0 {
				end(offset, io.EOF, false)
				return
			}
			continue
		}
		if err == io.EOF {
			if !emit(filled) {
				return
			}
			w.putChunk(c)
			end(offset, io.EOF, false)
			return
		}
		if filled == len(c.mem) && !emit(lines) {
			return
		}
	}
}

// skipLine reads on past the end of a line too long, whose first filled
// bytes are in buf (err is the last read's), and returns what follows
// its '\n' (in buf), how many bytes the line had, and the read's error.
func skipLine(r io.Reader, buf []byte, filled int, err error) (rest []byte, skipped int64, _ error) {
	skipped = int64(filled)
	scan := buf[:filled]
	for {
		if i := bytes.IndexByte(scan, '\n'); i >= 0 {
			// scan is the tail of what was skipped: give back what
			// follows the '\n'.
			skipped -= int64(len(scan) - i - 1)
			return scan[i+1:], skipped, nil
		}
		if err != nil {
			return nil, skipped, err
		}
		var n int
		n, err = r.Read(buf)
		skipped += int64(n)
		scan = buf[:n]
	}
}
