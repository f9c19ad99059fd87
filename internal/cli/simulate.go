package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
	"github.com/handover-dev/handover/internal/sim"
)

type simulateFlags struct {
	seeds        int
	seed         uint64
	databases    int
	replacements int
	ledger       string
	cutover      string
	parallel     int
	logLevel     string
	output       output
}

// SimulateReport is what `handover simulate --output json` prints.
type SimulateReport struct {
	Seeds        int           `json:"seeds"`
	FirstSeed    uint64        `json:"first_seed"`
	Handovers    int           `json:"handovers"`
	Committed    int           `json:"committed"`
	Aborted      int           `json:"aborted"`
	Violations   int           `json:"violations"`
	FailingSeeds []FailingSeed `json:"failing_seeds"`
	Totals       sim.Stats     `json:"totals"`
}

// FailingSeed is a seed that broke an invariant, with the command that
// replays it.
type FailingSeed struct {
	Seed       uint64   `json:"seed"`
	Violations []string `json:"violations"`
	Replay     string   `json:"replay"`
}

func newSimulate(stdout, stderr io.Writer) *cobra.Command {
	f := simulateFlags{output: "text"}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run the deterministic simulation and check handover's eight invariants",
		Long: `simulate runs many concurrent handovers per seed against an in-memory cloud
while it drops, duplicates, delays and reorders events, throttles and fails API
calls, crashes the controller between any two actions and restarts it from the
ledger, and kills, sickens or cuts off instances. A client writes through each
database's load balancer and reads its own fresh writes back while old and new
instances both serve. After every seed it checks the eight invariants of
docs/design.md and that every migration ended.

Each database draws its cutover from the seed (auto, retire or drain);
--cutover gives every database the same one. --cutover overlap is the
ordering before invariant no-stale-reads and shows what the checker finds without a
cutover: stale reads.

Each seed replays exactly. The last line is
  simulate: N seeds, M handovers, V invariant violations
and the exit status is 1 when V > 0. A failing seed prints the command that
replays it with the controller's log.`,
		Example: `  # the proof, as make demo runs it
  handover simulate --seeds 500

  # replay one seed with the controller's log
  handover simulate --seed 4242 --seeds 1 --log-level debug

  # a long run on every core, as a report
  handover simulate --seeds 100000 --output json

  # the same seeds on the SQLite ledger instead of the in-memory one
  handover simulate --seeds 50 --ledger sqlite

  # without a cutover: the checker reports stale reads (invariant no-stale-reads)
  handover simulate --seeds 20 --cutover overlap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimulate(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.seeds, "seeds", 100, "how many seeds to run")
	fl.Uint64Var(&f.seed, "seed", 0, "first seed")
	fl.IntVar(&f.databases, "databases", 0, "databases per seed (0: drawn from the seed, 1-3)")
	fl.IntVar(&f.replacements, "replacements", 0, "replacements per database (0: drawn from the seed, 1-3)")
	fl.StringVar(&f.ledger, "ledger", "memory", "ledger backend for the simulated controller: memory or sqlite (a fresh file per seed)")
	fl.StringVar(&f.cutover, "cutover", "", "every database's cutover: auto, retire, drain or overlap (default: drawn per database from the seed)")
	fl.IntVar(&f.parallel, "parallel", runtime.GOMAXPROCS(0), "seeds run at once")
	fl.StringVar(&f.logLevel, "log-level", "off", "controller log level on stderr: debug, info, warn, error, off")
	fl.Var(&f.output, "output", "text or json")
	return cmd
}

func runSimulate(ctx context.Context, f simulateFlags, stdout, stderr io.Writer) error {
	if f.seeds < 1 {
		return &exitError{code: 2, err: fmt.Errorf("--seeds must be at least 1, got %d", f.seeds)}
	}
	if f.parallel < 1 {
		return &exitError{code: 2, err: fmt.Errorf("--parallel must be at least 1, got %d", f.parallel)}
	}
	if f.ledger != "memory" && f.ledger != "sqlite" {
		return &exitError{code: 2, err: fmt.Errorf("--ledger %q: use memory or sqlite", f.ledger)}
	}
	if f.cutover != "" {
		if err := handover.ValidCutover(f.cutover); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--cutover: %w", err)}
		}
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	tmp := ""
	if f.ledger == "sqlite" {
		if tmp, err = os.MkdirTemp("", "handover-simulate-"); err != nil {
			return fmt.Errorf("creating a directory for the SQLite ledgers: %w", err)
		}
		defer os.RemoveAll(tmp)
	}

	var bar *progressbar.ProgressBar
	if file, ok := stderr.(*os.File); ok && isatty.IsTerminal(file.Fd()) && f.seeds > 1 {
		bar = progressbar.NewOptions(f.seeds, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("simulating"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}

	results := make([]sim.Result, f.seeds)
	errs := make([]error, f.seeds)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(f.parallel, f.seeds) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				seed := f.seed + uint64(i)
				opts := sim.Options{Seed: seed, Databases: f.databases, Replacements: f.replacements, Cutover: f.cutover, Logger: logger.With("seed", seed)}
				if tmp != "" {
					path := filepath.Join(tmp, fmt.Sprintf("seed-%d.db", seed))
					opts.NewLedger = func() (ledger.Ledger, error) { return sqlite.Open(ctx, path, slog.New(slog.DiscardHandler)) }
				}
				results[i], errs[i] = sim.Run(ctx, opts)
				if bar != nil {
					_ = bar.Add(1)
				}
			}
		}()
	}
	for i := range f.seeds {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	if err := ctx.Err(); err != nil {
		return &exitError{code: 130, err: fmt.Errorf("interrupted: %w", err)}
	}

	rep := SimulateReport{Seeds: f.seeds, FirstSeed: f.seed, FailingSeeds: []FailingSeed{}}
	for i, r := range results {
		if errs[i] != nil {
			return fmt.Errorf("seed %d: %w", f.seed+uint64(i), errs[i])
		}
		rep.Handovers += r.Handovers
		rep.Committed += r.Committed
		rep.Aborted += r.Aborted
		rep.Violations += len(r.Violations)
		rep.Totals = addStats(rep.Totals, r.Stats)
		if len(r.Violations) > 0 {
			rep.FailingSeeds = append(rep.FailingSeeds, FailingSeed{
				Seed: r.Seed, Violations: r.Violations,
				Replay: replayCommand(r.Seed, f),
			})
		}
	}

	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	} else {
		printSimulate(stdout, rep)
	}
	if rep.Violations > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func printSimulate(w io.Writer, rep SimulateReport) {
	for _, fs := range rep.FailingSeeds {
		fmt.Fprintf(w, "seed %d broke an invariant:\n", fs.Seed)
		for i, v := range fs.Violations {
			if i == 10 {
				fmt.Fprintf(w, "  … and %d more\n", len(fs.Violations)-10)
				break
			}
			fmt.Fprintf(w, "  %s\n", v)
		}
		fmt.Fprintf(w, "  replay: %s\n", fs.Replay)
	}
	t := rep.Totals
	fmt.Fprintf(w, "seeds %d..%d: %d committed, %d rolled back\n", rep.FirstSeed, rep.FirstSeed+uint64(rep.Seeds)-1, rep.Committed, rep.Aborted)
	fmt.Fprintf(w, "faults: %d controller crashes, %d instance faults, %d of %d events dropped, %d duplicated, %d throttles, %d server errors\n",
		t.Crashes, t.InstanceFaults, t.EventsDropped, t.Events, t.EventsDuplicated, t.Throttles, t.ServerErrors)
	fmt.Fprintf(w, "load: %d writes acknowledged (%d refused while fenced), %d reads served, %d failed while the simulator had broken the serving instance\n",
		t.WritesAcked, t.WritesRefused, t.ReadsOK, t.ReadsFailedExcused)
	fmt.Fprintf(w, "cutover: %d retires, %d drains, %d reads and %d writes forwarded by a retired instance, %d own fresh writes read back, %d stale reads\n",
		t.Retires, t.Drains, t.ReadsForwarded, t.WritesForwarded, t.FreshReadsOK, t.StaleReads)
	fmt.Fprintf(w, "simulate: %d seeds, %d handovers, %d invariant violations\n", rep.Seeds, rep.Handovers, rep.Violations)
}

func addStats(a, b sim.Stats) sim.Stats {
	a.APICalls += b.APICalls
	a.Throttles += b.Throttles
	a.ServerErrors += b.ServerErrors
	a.Events += b.Events
	a.EventsDropped += b.EventsDropped
	a.EventsDuplicated += b.EventsDuplicated
	a.Fences += b.Fences
	a.Unfences += b.Unfences
	a.WritesAcked += b.WritesAcked
	a.WritesRefused += b.WritesRefused
	a.WritesFailed += b.WritesFailed
	a.ReadsOK += b.ReadsOK
	a.ReadsFailed += b.ReadsFailed
	a.ReadsFailedExcused += b.ReadsFailedExcused
	a.FreshReadsOK += b.FreshReadsOK
	a.StaleReads += b.StaleReads
	a.Retires += b.Retires
	a.Drains += b.Drains
	a.ReadsForwarded += b.ReadsForwarded
	a.WritesForwarded += b.WritesForwarded
	a.Crashes += b.Crashes
	a.InstanceFaults += b.InstanceFaults
	a.Triggers += b.Triggers
	a.SimulatedTime += b.SimulatedTime
	return a
}

// replayCommand is the exact command that replays one seed of this run.
func replayCommand(seed uint64, f simulateFlags) string {
	cmd := fmt.Sprintf("handover simulate --seed %d --seeds 1", seed)
	if f.databases != 0 {
		cmd += fmt.Sprintf(" --databases %d", f.databases)
	}
	if f.replacements != 0 {
		cmd += fmt.Sprintf(" --replacements %d", f.replacements)
	}
	if f.ledger != "memory" {
		cmd += " --ledger " + f.ledger
	}
	return cmd + " --log-level debug"
}
