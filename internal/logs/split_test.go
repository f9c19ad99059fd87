package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
)

// runOutcome is everything a run over one object shows outside: the
// bulk bodies in order (ids, offsets, documents, bulk boundaries), the
// dead letters, the result and the error.
type runOutcome struct {
	Bodies [][]byte
	Dead   []DeadLetter
	Res    Result
	Err    string
}

// normalize drops the one difference the two paths may have, which the
// serial loop itself has depending on how its reads fall: a line too long
// that runs into a read error is either part of the corrupt tail (the
// error came with the bytes that filled bufio's buffer) or a line too
// long and then the corrupt tail at the same offset (it came after).
// Either way nothing is lost and the object is dead-lettered there.
func (o *runOutcome) normalize() {
	n := len(o.Dead)
	if n >= 2 && o.Dead[n-1].Cause == CauseCorrupt && o.Dead[n-2].Cause == CauseLineTooLong && o.Dead[n-2].Offset == o.Dead[n-1].Offset {
		o.Dead = append(o.Dead[:n-2], o.Dead[n-1])
		o.Res.DeadLettered--
	}
}

// stopAfter says stop at its nth call (never when n is 0).
func stopAfter(n int) func() bool {
	calls := 0
	return func() bool { calls++; return n > 0 && calls == n }
}

func runWith(t testing.TB, obj []byte, key string, cfg Config, from int64, stopAt int) runOutcome {
	t.Helper()
	p, idx, dead := newTest(memStore{"b/" + key: obj}, cfg)
	res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: key, From: from}, stopAfter(stopAt))
	out := runOutcome{Bodies: idx.bodies, Dead: dead.letters, Res: res}
	if err != nil {
		out.Err = err.Error()
	}
	return out
}

// compareSerialParallel runs the object with one parse worker and with
// several, chunks and lines kept small so that lines, lines too long and
// gzip members fall across chunk boundaries, and wants the same outcome.
func compareSerialParallel(t *testing.T, obj []byte, key string, maxLine, bulk int, from int64, stopAt int) {
	t.Helper()
	defer func(n int) { chunkTarget = n }(chunkTarget)
	chunkTarget = 1 + int(uint(maxLine*7+bulk)%97)
	cfg := Config{MaxLineBytes: maxLine, BulkBytes: bulk}
	cfg.ParseWorkers = 1
	want := runWith(t, obj, key, cfg, from, stopAt)
	want.normalize()
	for _, workers := range []int{2, 3} {
		cfg.ParseWorkers = workers
		got := runWith(t, obj, key, cfg, from, stopAt)
		got.normalize()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d workers (max line %d, bulk %d, from %d, stop at %d, chunk %d) differ from one:\n got %+v (%s)\nwant %+v (%s)\nbodies %d vs %d, dead letters %d vs %d\n%s",
				workers, maxLine, bulk, from, stopAt, chunkTarget, got.Res, got.Err, want.Res, want.Err, len(got.Bodies), len(want.Bodies), len(got.Dead), len(want.Dead), firstDiff(got, want))
		}
	}
}

func firstDiff(got, want runOutcome) string {
	for i := range min(len(got.Bodies), len(want.Bodies)) {
		if !bytes.Equal(got.Bodies[i], want.Bodies[i]) {
			return fmt.Sprintf("body %d:\n got %.300q\nwant %.300q", i, got.Bodies[i], want.Bodies[i])
		}
	}
	for i := range min(len(got.Dead), len(want.Dead)) {
		if g, w := got.Dead[i], want.Dead[i]; g != w {
			g.Line, w.Line = string(clipBytes([]byte(g.Line), 80)), string(clipBytes([]byte(w.Line), 80))
			return fmt.Sprintf("dead letter %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	return "err: " + got.Err + " | " + want.Err
}

// randomObject is lines of every kind: good ALB lines, bad ones, blank
// ones, CRLF, lines too long (within and across chunks), an unterminated
// last line; plain or gzip in several members, sometimes truncated.
func randomObject(rng *rand.Rand, maxLine int) (obj []byte, gzipped bool) {
	good := bytes.Split(bytes.TrimSuffix(realALBLines(50), []byte("\n")), []byte("\n"))
	var b bytes.Buffer
	for range rng.IntN(120) {
		switch k := rng.IntN(20); {
		case k < 12:
			b.Write(good[rng.IntN(len(good))])
		case k == 12:
			b.WriteString("this is not a log line")
		case k == 13:
		case k == 14:
			b.WriteString("  \r")
		case k == 15:
			b.Write(bytes.Repeat([]byte("x"), maxLine-1+rng.IntN(3))) // around the limit
		case k == 16:
			b.Write(bytes.Repeat([]byte("y"), maxLine+rng.IntN(4*maxLine)))
		case k == 17:
			b.Write(good[rng.IntN(len(good))])
			b.WriteByte('\r')
		default:
			b.Write(good[rng.IntN(len(good))][:rng.IntN(200)])
		}
		b.WriteByte('\n')
	}
	if rng.IntN(3) == 0 {
		b.Write(good[0][:rng.IntN(len(good[0]))]) // no '\n' at the end
	}
	text := b.Bytes()
	if rng.IntN(4) == 0 {
		return text, false
	}
	var parts [][]byte
	for len(text) > 0 {
		n := min(len(text), rng.IntN(len(text)+1)+1)
		parts = append(parts, text[:n])
		text = text[n:]
	}
	obj = gz(parts...)
	if rng.IntN(5) == 0 && len(obj) > 20 {
		obj = obj[:len(obj)-1-rng.IntN(len(obj)/2)] // truncated
	}
	return obj, true
}

const plainKey = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2025/08/14/123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20250814T2225Z_10.0.0.1_5xxd2b1k.log"

func TestParallelMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 600
	if testing.Short() {
		n = 100
	}
	for i := range n {
		maxLine := 300 + rng.IntN(1200)
		obj, _ := randomObject(rng, maxLine)
		bulk := 1 + rng.IntN(20000)
		from := int64(0)
		if rng.IntN(3) == 0 {
			from = rng.Int64N(int64(len(obj)*3) + 1)
		}
		stopAt := rng.IntN(4)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			compareSerialParallel(t, obj, albKey, maxLine, bulk, from, stopAt)
		})
	}
}

// The bench object, as the pipeline runs it by default: same bulks.
func TestParallelMatchesSerialBigObject(t *testing.T) {
	lines := realALBLines(3000)
	obj := gz(lines[:len(lines)/3], lines[len(lines)/3:])
	cfg := Config{ParseWorkers: 1, BulkBytes: 300 << 10}
	want := runWith(t, obj, albKey, cfg, 0, 0)
	cfg.ParseWorkers = 2
	got := runWith(t, obj, albKey, cfg, 0, 0)
	if !reflect.DeepEqual(got, want) || want.Res.Indexed != 3000 || len(want.Bodies) < 5 {
		t.Fatalf("parallel %+v, serial %+v (%d and %d bulks)\n%s", got.Res, want.Res, len(got.Bodies), len(want.Bodies), firstDiff(got, want))
	}
}

// A reader that fails part-way: the lines before are indexed, the rest is
// a corrupt-object dead letter at the same offset both ways.
type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.n, 1+len(p)/3)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestParallelMatchesSerialReadError(t *testing.T) {
	lines := realALBLines(200)
	for _, cut := range []int{1, 700, 5000, len(lines) / 2, len(lines) - 3} {
		var outs []runOutcome
		for _, workers := range []int{1, 2} {
			p, idx, dead := newTest(nil, Config{ParseWorkers: workers, BulkBytes: 8 << 10, MaxLineBytes: 1024})
			w := &work{p: p, o: Object{Bucket: "b", Key: albKey}, res: &Result{}, format: FormatALB, base: DocID("b", albKey), object: "s3://b/" + albKey, prefix: "elb-logs"}
			w.objField = objectField(w.object)
			err := w.run(context.Background(), &failingReader{r: bytes.NewReader(lines), n: cut, err: errors.New("connection reset")}, nil)
			out := runOutcome{Bodies: idx.bodies, Dead: dead.letters, Res: *w.res}
			if err != nil {
				out.Err = err.Error()
			}
			outs = append(outs, out)
		}
		if !reflect.DeepEqual(outs[0], outs[1]) {
			t.Fatalf("cut at %d: parallel %+v, serial %+v\n%s", cut, outs[1].Res, outs[0].Res, firstDiff(outs[1], outs[0]))
		}
		if d := outs[0].Dead; len(d) != 1 || d[0].Cause != CauseCorrupt {
			t.Fatalf("cut at %d: dead letters %+v, want one %s", cut, d, CauseCorrupt)
		}
	}
}

// FuzzParallelMatchesSerial: for any content, any line limit, bulk size
// and starting offset, the parallel path writes what the serial loop
// writes.
func FuzzParallelMatchesSerial(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		obj, _ := randomObject(rng, 300)
		f.Add(obj, uint16(300), uint16(4000), uint16(0), uint8(0))
	}
	f.Add([]byte(albLine(30)+"\n\n"+albLine(30)), uint16(40), uint16(10), uint16(3), uint8(1))
	f.Fuzz(func(t *testing.T, obj []byte, maxLine, bulk, from uint16, stopAt uint8) {
		compareSerialParallel(t, obj, albKey, 16+int(maxLine%4096), 1+int(bulk), int64(from), int(stopAt%4))
	})
}
