package demo

import (
	"slices"
	"testing"
	"time"
)

// newGroupEnv is newEnv with the group created with o.
func newGroupEnv(t *testing.T, o GroupOptions) *Env {
	t.Helper()
	e := newBareEnv(t, Options{})
	if err := e.CreateGroupWith(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	return e
}

func stepStates(r Result) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.State)
	}
	return out
}

// runUpdateUnder runs the update scenario on 1 MiB of state in a group
// set up with opts.
func runUpdateUnder(t *testing.T, opts GroupOptions) Result {
	t.Helper()
	e := newGroupEnv(t, opts)
	keys, err := e.Load(t.Context(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Run(t.Context(), ScenarioUpdate, keys, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOverlapCutoverServesStaleReads is the field report on real
// components: with the ordering before invariant no-stale-reads (the overlap cutover),
// the old instance still answers reads from its own data while the new one
// acknowledges writes, and the demo's traffic, reading back its own fresh
// writes through the load balancer, sees "not found" for some of them. The
// same scenario under the default cutover (TestScenarios) has none.
//
// The stale reads fall in the window between the new instance joining the
// load balancer and the old one leaving it, whose length a busy machine
// varies (a clean-clone run under load once saw none): the scenario gets
// three tries, in fresh environments, to show one.
func TestOverlapCutoverServesStaleReads(t *testing.T) {
	var r Result
	for try := 1; try <= 3; try++ {
		r = runUpdateUnder(t, GroupOptions{Cutover: "overlap"})
		t.Logf("overlap, try %d: write pause %d ms, %d own writes read back, %d stale, steps %v", try, r.WritePauseMS, r.FreshReadsOK, r.StaleReads, stepStates(r))
		if r.StaleReads > 0 || r.FreshReadsOK == 0 {
			break
		}
	}
	if r.StaleReads == 0 {
		t.Errorf("the overlap cutover served no stale read in three tries: the traffic cannot see the bug it is meant to catch (problems %v)", r.Problems)
	}
	if slices.Contains(stepStates(r), "Retiring") {
		t.Errorf("overlap retired: %v", stepStates(r))
	}
	if r.WritesLost > 0 {
		t.Errorf("%d acknowledged writes lost", r.WritesLost)
	}
}

// TestDrainCutover: a handover under the drain cutover takes the old
// instance out of the load balancer, waits out the deregistration delay,
// and only then unfences the new one: no stale read, no failed read.
func TestDrainCutover(t *testing.T) {
	const delay = 3 * time.Second
	r := runUpdateUnder(t, GroupOptions{Cutover: "drain", DeregistrationDelay: delay})
	checkResult(t, r)
	steps := stepStates(r)
	if !slices.Contains(steps, "Draining") || !slices.Contains(steps, "Unfencing") {
		t.Fatalf("steps %v, want Draining then Unfencing", steps)
	}
	for _, s := range r.Steps {
		if s.State == "Draining" && time.Duration(s.DurationMS)*time.Millisecond < delay {
			t.Errorf("Draining lasted %d ms, less than the %s deregistration delay", s.DurationMS, delay)
		}
	}
	if time.Duration(r.WritePauseMS)*time.Millisecond < delay {
		t.Errorf("write pause %d ms under drain, less than the deregistration delay %s: the new instance took writes before the old one drained", r.WritePauseMS, delay)
	}
}
