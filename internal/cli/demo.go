package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/demo"
)

type demoFlags struct {
	scenario, dataDir, kvstore, stateSize string
	keep, noPreCopy                       bool
	// dashboard keeps everything up afterwards, the controller's API and
	// dashboard on dashboardListen.
	dashboard       bool
	dashboardListen string
	out             output
}

func newDemo(stdout, stderr io.Writer) *cobra.Command {
	f := demoFlags{out: "text"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run handover's main job end to end on the local cloud",
		Long: `demo starts the local cloud and a handover controller (a child process talking
to the local cloud through the AWS SDK, exactly as it would talk to AWS), then
creates a group of one kvstore instance behind a load balancer, with handover's
launch and terminate hooks. It loads --state-size of data through the load
balancer and replaces the instance while a load generator reads and writes
through the load balancer:

  update     a new image version is rolled out (launch before terminate)
  unhealthy  the instance is marked unhealthy and the group replaces it
  az-move    the instance's zone is taken out of the group, which relaunches
             in another zone
  logs       the load balancer's access logs go to a bucket that notifies an
             SQS queue; handover logs run (a child process) indexes them into
             the local cloud's OpenSearch endpoint, is SIGKILLed in the middle
             of a file and started again while every notification is sent
             twice; the store must end with exactly one document per request
             the load generator sent, and no dead letter

and then, on groups of three instances with one database each (a pool),
the group updates of handover update:

  rolling      one instance at a time, launch before terminate
  replace-all  a new group of three that must signal SUCCESS, then the old
               group is deleted

For each scenario it prints the handover's timeline step by step, the write
pause, reads served and failed, acknowledged writes and whether every one of
them is on the new instance, and the volumes and snapshots left over. A
scenario is ok when no read failed, no write was lost, nothing leaked, and the
new instance is in service on the authoritative volume. demo exits 1 if any
scenario is not ok.

With --dashboard the local cloud and the controller stay up after the
scenarios, until Ctrl-C, and demo prints the address of the controller's
dashboard (docs/dashboard.md) with a one-time API token in its fragment.

kvstore is looked for next to the handover program, then on PATH (make build
puts both in bin/).`,
		Example: `  # every scenario with 64 MiB of state
  handover demo

  # one scenario, 1 GiB of state, machine-readable
  handover demo --scenario update --state-size 1GiB --output json

  # the access-log pipeline only
  handover demo --scenario logs

  # the group updates only
  handover demo --scenario rolling
  handover demo --scenario replace-all

  # keep the local cloud's data and the logs for a look afterwards
  handover demo --data-dir /tmp/handover-demo --keep

  # then keep the local cloud and the controller up, and look at what
  # happened in the dashboard (the URL it prints carries the token)
  handover demo --dashboard
  handover demo --scenario rolling --dashboard --dashboard-listen 127.0.0.1:8088`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "all", "update, unhealthy, az-move, logs, rolling, replace-all or all")
	fl.StringVar(&f.stateSize, "state-size", "64MiB", "data loaded before the replacements (e.g. 64MiB, 1GiB)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the local cloud, the ledger and the logs (default: a temporary one)")
	fl.BoolVar(&f.keep, "keep", false, "keep the data directory afterwards")
	fl.StringVar(&f.kvstore, "kvstore", "", "path of the kvstore program (default: next to handover, then PATH)")
	fl.BoolVar(&f.noPreCopy, "no-pre-copy", false, "hand over without the pre-copy snapshot, for comparison")
	fl.BoolVar(&f.dashboard, "dashboard", false, "keep the local cloud and the controller up after the scenarios, until Ctrl-C, and print the dashboard's URL")
	fl.StringVar(&f.dashboardListen, "dashboard-listen", "127.0.0.1:7070", "with --dashboard: the controller's API and dashboard address")
	fl.Var(&f.out, "output", "text or json")
	return cmd
}

// parseSize reads sizes such as 64MiB, 1GiB, 512KiB or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q is not a positive size such as 64MiB or 1GiB", s)
	}
	return int64(n * float64(mult)), nil
}

func findKVStore(flag string) (string, error) {
	if flag != "" {
		// Checked here: a kvstore that cannot run shows up only minutes
		// later, as instances that never get healthy.
		fi, err := os.Stat(flag)
		if err != nil {
			return "", fmt.Errorf("--kvstore %s: %w: pass the kvstore program (`make build` puts it in bin/)", flag, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("--kvstore %s is not an executable file: pass the kvstore program (`make build` puts it in bin/)", flag)
		}
		return filepath.Abs(flag)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "kvstore")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("kvstore"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("kvstore not found next to handover nor on PATH: run `make build` (it puts both in bin/) or pass --kvstore")
}

// DemoReport is `handover demo --output json`.
type DemoReport struct {
	OK        bool          `json:"ok"`
	StateSize int64         `json:"state_size_bytes"`
	Keys      int           `json:"keys"`
	DataDir   string        `json:"data_dir,omitempty"`
	Scenarios []demo.Result `json:"scenarios"`
	// Logs is the access-log scenario (absent when not run).
	Logs *demo.LogsResult `json:"logs,omitempty"`
	// Updates are the group update scenarios (rolling, replace-all).
	Updates []demo.UpdateResult `json:"updates"`
	// DashboardURL is the controller's dashboard, with its token in the
	// fragment (--dashboard only).
	DashboardURL string `json:"dashboard_url,omitempty"`
}

func runDemo(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	scenarios, updates, runLogs := demo.Scenarios, demo.UpdateScenarios, true
	if f.scenario != "all" {
		all := append(append(slices.Clone(demo.Scenarios), demo.ScenarioLogs), demo.UpdateScenarios...)
		if !slices.Contains(all, f.scenario) {
			return &exitError{code: 2, err: fmt.Errorf("unknown --scenario %q: use %s or all", f.scenario, strings.Join(all, ", "))}
		}
		scenarios, updates, runLogs = nil, nil, f.scenario == demo.ScenarioLogs
		switch {
		case slices.Contains(demo.Scenarios, f.scenario):
			scenarios = []string{f.scenario}
		case slices.Contains(demo.UpdateScenarios, f.scenario):
			updates = []string{f.scenario}
		}
	}
	size, err := parseSize(f.stateSize)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	kv, err := findKVStore(f.kvstore)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the handover program: %w", err)
	}
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "handover-demo-"); err != nil {
			return fmt.Errorf("creating a data directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	// The data directory goes unless --keep, or unless a controller died:
	// its log is the one place that says why.
	var exited *demo.ControllerExitedError
	defer func() {
		if !f.keep && exited == nil {
			os.RemoveAll(dir)
		}
	}()
	p := newProgress(stderr)
	defer p.done()

	opts := demo.Options{DataDir: dir, HandoverBin: self, KVStoreBin: kv, NoPreCopy: f.noPreCopy}
	if f.dashboard {
		if opts.APIToken, err = newToken(); err != nil {
			return err
		}
		if err := checkFree(f.dashboardListen); err != nil {
			return &exitError{code: 2, err: err}
		}
		opts.Listen = f.dashboardListen
	}
	p.say("starting the local cloud and the controller")
	env, err := demo.Start(ctx, opts)
	if errors.As(err, &exited) {
		return &exitError{code: 1, err: err}
	}
	if err != nil {
		return err
	}
	defer env.Close()
	// Every step below stops as soon as the controller is gone, rather
	// than waiting out its timeout for an API that will never answer.
	ctx, stop := env.WatchControllers(ctx)
	defer stop()
	// controllerGone turns an error caused by the controller's exit into
	// one that says so.
	controllerGone := func(err error) error {
		if err == nil || !errors.As(context.Cause(ctx), &exited) {
			return err
		}
		return fmt.Errorf("the controller exited in the middle of the demo: %w (the data directory %s is kept)", exited, dir)
	}
	keys := int((size + demo.ValueSize - 1) / demo.ValueSize)
	if len(scenarios) > 0 || runLogs {
		p.say("creating the group: one kvstore instance behind a load balancer (first boot)")
		if err := env.CreateGroup(ctx); err != nil {
			return exitOn(controllerGone(err))
		}
		if keys, err = env.Load(ctx, size, p.bytes); err != nil {
			return exitOn(controllerGone(err))
		}
		p.clearBar()
	}

	rep := DemoReport{OK: true, StateSize: size, Keys: keys, Scenarios: []demo.Result{}, Updates: []demo.UpdateResult{}}
	broken := false
	if f.keep {
		rep.DataDir = dir
	}
	for _, s := range scenarios {
		res, err := env.Run(ctx, s, keys, func(msg string) { p.say("[" + s + "] " + msg) })
		err = controllerGone(err)
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			res.OK = false
		}
		rep.Scenarios = append(rep.Scenarios, res)
		rep.OK = rep.OK && res.OK
		if err != nil {
			broken = true
			break // the environment is in an unknown state
		}
	}
	// The access logs of the same load balancer, after its replacements.
	if runLogs && !broken {
		res, err := env.RunLogs(ctx, keys, func(msg string) { p.say("[" + demo.ScenarioLogs + "] " + msg) })
		if err = controllerGone(err); err != nil {
			res.Problems = append(res.Problems, err.Error())
			res.OK = false
			broken = true
		}
		rep.Logs = &res
		rep.OK = rep.OK && res.OK
	}
	// Group updates run on groups of their own, 3 instances with one
	// database each; every database gets a share of the state.
	poolKeys := max(1, keys/3)
	for _, s := range updates {
		if broken {
			break
		}
		res, err := env.RunUpdate(ctx, s, poolKeys, func(msg string) { p.say("[" + s + "] " + msg) })
		err = controllerGone(err)
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			res.OK = false
		}
		rep.Updates = append(rep.Updates, res)
		rep.OK = rep.OK && res.OK
		if err != nil {
			break
		}
	}
	p.done()
	if f.dashboard {
		rep.DashboardURL = "http://" + f.dashboardListen + "/#token=" + opts.APIToken
	}
	if f.out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDemo(stdout, rep)
	}
	if f.dashboard && exited == nil {
		waitDashboard(ctx, stderr, f.dashboardListen, opts.APIToken)
		// A controller that died while the user looked is reported below.
		errors.As(context.Cause(ctx), &exited)
	}
	if exited != nil {
		return &exitError{code: 1, err: fmt.Errorf("the controller exited in the middle of the demo: %w; the other logs are in %s", exited, dir)}
	}
	if !rep.OK {
		hint := "rerun with --data-dir DIR --keep to keep the logs"
		if f.keep {
			hint = "the logs are in " + dir
		}
		return &exitError{code: 1, err: fmt.Errorf("a scenario is not ok; %s", hint)}
	}
	return nil
}

// newToken is a random API token for the demo's controller.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making an API token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// checkFree says, before minutes of scenarios, that the dashboard's
// address is taken.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--dashboard-listen %s: %w (is another controller or demo running? give a free address, e.g. --dashboard-listen 127.0.0.1:8088)", addr, err)
	}
	return ln.Close()
}

// waitDashboard says where the dashboard is and waits for Ctrl-C (or
// for the controller to exit).
func waitDashboard(ctx context.Context, w io.Writer, addr, token string) {
	fmt.Fprintf(w, "\ndashboard: http://%s/#token=%s\n", addr, token)
	fmt.Fprintf(w, "  the local cloud and the controller stay up until Ctrl-C\n")
	fmt.Fprintf(w, "  from another shell: HANDOVER_API_TOKEN=%s handover status --api http://%s\n", token, addr)
	<-ctx.Done()
}

// exitOn makes err, if any, exit 1: the demo ran and something failed.
func exitOn(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: 1, err: err}
}

func printDemo(w io.Writer, rep DemoReport) {
	fmt.Fprintf(w, "state: %s in %d keys\n", humanBytes(rep.StateSize), rep.Keys)
	for _, r := range rep.Scenarios {
		verdict := "ok"
		if !r.OK {
			verdict = "NOT OK"
		}
		fmt.Fprintf(w, "\n== %s: %s\n", r.Scenario, verdict)
		fmt.Fprintf(w, "%s (%s) -> %s (%s), volume %s, epoch %d\n", r.OldInstance, r.OldZone, r.NewInstance, r.NewZone, r.Volume, r.Epoch)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  step\tstart\tduration")
		var t0 time.Time
		for i, s := range r.Steps {
			if i == 0 {
				t0 = s.Start
			}
			fmt.Fprintf(tw, "  %s\t+%.3fs\t%dms\n", s.State, s.Start.Sub(t0).Seconds(), s.DurationMS)
		}
		tw.Flush()
		fmt.Fprintf(w, "write pause:     %d ms\n", r.WritePauseMS)
		fmt.Fprintf(w, "reads:           %d served, %d failed\n", r.ReadsOK, r.ReadsFailed)
		fmt.Fprintf(w, "own writes:      %d read back right after their ack, %d stale\n", r.FreshReadsOK, r.StaleReads)
		onNew := "all on the new instance"
		if r.WritesLost > 0 {
			onNew = fmt.Sprintf("%d LOST", r.WritesLost)
		}
		fmt.Fprintf(w, "writes acked:    %d, %s\n", r.WritesAcked, onNew)
		fmt.Fprintf(w, "left over:       %d volumes, %d snapshots\n", r.LeakedVolumes, r.LeakedSnapshots)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
	}
	if r := rep.Logs; r != nil {
		verdict := "ok"
		if !r.OK {
			verdict = "NOT OK"
		}
		fmt.Fprintf(w, "\n== %s: %s\n", r.Scenario, verdict)
		fmt.Fprintf(w, "requests:        %d answered by the load balancer (%d unanswered)\n", r.Requests, r.Unanswered)
		fmt.Fprintf(w, "access logs:     %d objects in the bucket, %d notifications sent again\n", r.LogObjects, r.Redelivered)
		killed := "not mid-file"
		if r.KilledMidFile {
			killed = "mid-file"
		}
		fmt.Fprintf(w, "pipeline:        SIGKILLed after %d documents (%s), restarted; %d lines found already indexed\n", r.KilledAfter, killed, r.AlreadyIndexed)
		fmt.Fprintf(w, "indexed:         %d documents, %d of them the load generator's requests, at most %d of one request\n", r.Documents, r.LoadRequests, r.MostOfOne)
		fmt.Fprintf(w, "dead letters:    %d\n", r.DeadLetters)
		fmt.Fprintf(w, "reads:           %d served, %d failed\n", r.ReadsOK, r.ReadsFailed)
		fmt.Fprintf(w, "own writes:      %d read back right after their ack, %d stale\n", r.FreshReadsOK, r.StaleReads)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
	}
	for _, r := range rep.Updates {
		verdict := "ok"
		if !r.OK {
			verdict = "NOT OK"
		}
		fmt.Fprintf(w, "\n== %s: %s\n", r.Scenario, verdict)
		fmt.Fprintf(w, "handover update --group %s --strategy %s: %s in %.1fs\n", r.Group, r.Scenario, r.State, float64(r.DurationMS)/1000)
		if r.NewGroup != "" {
			fmt.Fprintf(w, "new group %s replaced %s\n", r.NewGroup, r.Group)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  phase\tduration\tnote")
		for _, ph := range r.Phases {
			if ph.Phase == "done" {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%dms\t%s\n", ph.Phase, ph.End.Sub(ph.Start).Milliseconds(), ph.Note)
		}
		tw.Flush()
		fmt.Fprintf(w, "handovers:       %d of %d instances\n", r.Handovers, r.Instances)
		fmt.Fprintf(w, "write pause:     %d ms (longest of one database, as its client saw it; fence to commit %d ms)\n", r.ClientWritePauseMS, r.MaxWritePauseMS)
		fmt.Fprintf(w, "reads:           %d served, %d failed\n", r.ReadsOK, r.ReadsFailed)
		fmt.Fprintf(w, "own writes:      %d read back right after their ack, %d stale\n", r.FreshReadsOK, r.StaleReads)
		onNew := "all on the database's instance"
		if r.WritesLost > 0 {
			onNew = fmt.Sprintf("%d LOST", r.WritesLost)
		}
		fmt.Fprintf(w, "writes acked:    %d, %s\n", r.WritesAcked, onNew)
		fmt.Fprintf(w, "left over:       %d volumes, %d snapshots\n", r.LeakedVolumes, r.LeakedSnapshots)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
	}
	verdict := "every scenario ok"
	if !rep.OK {
		verdict = "NOT OK"
	}
	fmt.Fprintf(w, "\ndemo: %s\n", verdict)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// progress shows what the demo is doing: a bar and a changing description
// on a terminal, one line per change otherwise.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	bar  *progressbar.ProgressBar
	last string
	name string // the command, prefixed to plain progress lines
}

func newProgress(w io.Writer) *progress { return newProgressFor(w, "demo") }

func newProgressFor(w io.Writer, name string) *progress {
	file, ok := w.(*os.File)
	return &progress{w: w, tty: ok && isatty.IsTerminal(file.Fd()), name: name}
}

func (p *progress) say(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg == p.last {
		return
	}
	p.last = msg
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", p.name, msg)
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(p.w), progressbar.OptionSpinnerType(14),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetElapsedTime(true))
	}
	p.bar.Describe(msg)
	_ = p.bar.Add(1)
}

// bytes reports the load's progress.
func (p *progress) bytes(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		if done == total || done%(total/4+1) < 256<<10 {
			fmt.Fprintf(p.w, "demo: loaded %s of %s\n", humanBytes(done), humanBytes(total))
		}
		return
	}
	if p.bar == nil || p.bar.GetMax64() != total {
		if p.bar != nil {
			_ = p.bar.Finish()
		}
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription("loading state"),
			progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
		p.last = ""
	}
	_ = p.bar.Set64(done)
}

func (p *progress) clearBar() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

func (p *progress) done() { p.clearBar() }
