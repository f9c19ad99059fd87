package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/logs/logstest"
	"github.com/handover-dev/handover/internal/testenv"
)

// handoverBin builds the handover binary once per test binary.
func handoverBin(t *testing.T) string {
	t.Helper()
	return testenv.Binary(t, "github.com/handover-dev/handover/cmd/handover")
}

// daemon is `handover logs run` as a process of its own.
type daemon struct {
	cmd     *exec.Cmd
	metrics string // http://…/metrics
	logs    *strings.Builder
	mu      *sync.Mutex
	done    chan error
}

var metricsLine = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

func startDaemon(t *testing.T, env *logstest.Env, endpoint string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"logs", "run", "--endpoint-url", env.URL, "--queue-url", env.QueueURL, "--dlq-url", env.DeadURL,
		"--endpoint", endpoint, "--metrics-addr", "127.0.0.1:0", "--log-level", "info"}, extra...)
	cmd := exec.Command(handoverBin(t), args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=SECRET", "AWS_REGION=us-east-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := metricsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("daemon pid %d logs:\n%s", cmd.Process.Pid, d.output())
		}
	})
	select {
	case d.metrics = <-found:
	case err := <-d.done:
		t.Fatalf("the daemon exited at start: %v\n%s", err, d.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("no metrics address within a minute:\n%s", d.output())
	}
	return d
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// metric reads one unlabelled sample from the daemon's /metrics.
func (d *daemon) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(d.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s", name, d.metrics)
	return 0
}

// peakRSS is the process's high-water resident set, in MiB.
func (d *daemon) peakRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func (d *daemon) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not end within 30s of %v", sig)
		return nil
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The daemon as a real process, SIGKILLed in the middle of a file (no
// chance to clean up: its message is still in flight, its bulks half
// sent), then run again while SQS also delivers the notifications twice:
// every line is indexed exactly once, nothing is dead-lettered, the queue
// ends empty, and the second run's metrics count the lines the first had
// indexed as duplicates.
func TestDaemonSIGKILLedMidFile(t *testing.T) {
	env := logstest.Start(t, logstest.Options{Visibility: 2 * time.Second})
	// Each bulk takes 100ms more, so the file lasts long enough to be
	// killed in.
	env.Fault(t, `{"service":"es","action":"Bulk","kind":"latency","delay":"100ms"}`)
	const albN, classicN = 900, 100
	env.Put(t, logstest.ALBKey("killed"), logstest.Gzip(logstest.ALBLines(500), logstest.ALBLines(albN-500)))
	env.Put(t, logstest.ClassicKey("classic"), logstest.ClassicLines(classicN))

	first := startDaemon(t, env, env.Endpoint, "--bulk-bytes", "32768")
	waitFor(t, "a quarter of the lines indexed", 2*time.Minute, func() bool { return env.Count(t) >= (albN+classicN)/4 })
	firstPeak := first.peakRSS(t) // before the kill: /proc/PID goes with the process
	if err := first.stop(t, syscall.SIGKILL); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the daemon was not killed: %v", err)
	}
	partial := env.Count(t)
	if partial >= albN+classicN {
		t.Fatalf("the first run indexed all %d lines before it was killed; the test wants it killed mid-file", partial)
	}

	env.ClearFaults(t)
	// SQS may deliver a notification twice: send each again.
	ctx := context.Background()
	for _, key := range []string{logstest.ALBKey("killed"), logstest.ClassicKey("classic")} {
		body := fmt.Sprintf(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q}}}]}`, logstest.Bucket, key)
		if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(env.QueueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	second := startDaemon(t, env, env.Endpoint, "--bulk-bytes", "32768")
	waitFor(t, "every line indexed and the queue empty", 3*time.Minute, func() bool {
		return env.Count(t) == albN+classicN && env.Depth(t, env.QueueURL) == 0
	})
	if dups := second.metric(t, "handover_logs_duplicates_total"); dups < float64(partial) {
		t.Errorf("the second run counted %v duplicates; the killed run had indexed %d", dups, partial)
	}
	if lines := second.metric(t, "handover_logs_lines_total"); lines < float64(albN+classicN) {
		t.Errorf("the second run's lines_total is %v, want at least %d", lines, albN+classicN)
	}
	secondPeak := second.peakRSS(t)
	t.Logf("killed run: %d of %d lines indexed, peak RSS (VmHWM) %.1f MiB; second run: peak RSS %.1f MiB", partial, albN+classicN, firstPeak, secondPeak)
	if max(firstPeak, secondPeak) > peakBound {
		t.Errorf("daemon peak RSS %.1f / %.1f MiB, over the bound of %.0f MiB", firstPeak, secondPeak, peakBound)
	}
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("the daemon did not stop cleanly on SIGTERM: %v", err)
	}
	if got := env.Count(t); got != albN+classicN {
		t.Errorf("%d documents, want %d", got, albN+classicN)
	}
	if d := env.Depth(t, env.DeadURL); d != 0 {
		t.Errorf("%d dead letters", d)
	}
}
