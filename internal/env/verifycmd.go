package env

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
)

// maxCmdOutput bounds what a report keeps of --verify-cmd's output: its
// tail, where a failing check says why.
const maxCmdOutput = 16 << 10

// envKey turns a resource name into the part of a variable name that
// names it: HANDOVER_RDS_PROD_DB_ENDPOINT for prod-db.
func envKey(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, name)
}

// VerifyEnv is what --verify-cmd finds in its environment, besides the
// caller's own:
//
//	HANDOVER_ENV                  DST's name
//	HANDOVER_SOURCE_ENV           SRC's name
//	HANDOVER_CLONE_OP             the clone's operation id
//	HANDOVER_LB_DNS, HANDOVER_LB_PORT, HANDOVER_LB_URL
//	                              DST's entry point: the DNS name of the load
//	                              balancer whose listener is tagged
//	                              handover:entry=true, that listener's port, and
//	                              http://DNS:PORT
//	HANDOVER_LB_<NAME>_DNS        each of DST's load balancers
//	HANDOVER_RDS_<ID>_ENDPOINT    each of DST's RDS instances, host:port
//	HANDOVER_RDS_INSTANCES        their ids, space-separated
//	HANDOVER_BUCKET_<NAME>        each of DST's buckets (the value is its name)
//	HANDOVER_BUCKETS              their names, space-separated
//
// <NAME> and <ID> are DST's names uppercased, every character other than
// a letter or digit turned into _.
func (r *Runner) VerifyEnv(ctx context.Context, op *ledger.EnvOp) ([]string, error) {
	dst := op.Cloning.Dest
	vars := []string{"HANDOVER_ENV=" + dst, "HANDOVER_SOURCE_ENV=" + op.Environment, "HANDOVER_CLONE_OP=" + op.ID}
	lbs, err := r.disc.TaggedLoadBalancers(ctx, ByName(dst))
	if err != nil {
		return vars, fmt.Errorf("reading DST's load balancers: %w", err)
	}
	for _, lb := range lbs {
		vars = append(vars, fmt.Sprintf("HANDOVER_LB_%s_DNS=%s", envKey(lb.Name), lb.DNSName))
		for _, l := range lb.Listeners {
			if l.Entry {
				vars = append(vars, "HANDOVER_LB_DNS="+lb.DNSName, fmt.Sprintf("HANDOVER_LB_PORT=%d", l.Port), fmt.Sprintf("HANDOVER_LB_URL=http://%s:%d", lb.DNSName, l.Port))
			}
		}
	}
	var rdsIDs, buckets []string
	for _, it := range op.Cloning.Items {
		switch it.Kind {
		case KindRDS:
			rdsIDs = append(rdsIDs, it.Name)
			vars = append(vars, fmt.Sprintf("HANDOVER_RDS_%s_ENDPOINT=%s", envKey(it.Name), it.ID))
		case KindBucket:
			buckets = append(buckets, it.Name)
			vars = append(vars, fmt.Sprintf("HANDOVER_BUCKET_%s=%s", envKey(it.Name), it.Name))
		}
	}
	vars = append(vars, "HANDOVER_RDS_INSTANCES="+strings.Join(rdsIDs, " "), "HANDOVER_BUCKETS="+strings.Join(buckets, " "))
	slices.Sort(vars)
	return vars, nil
}

// runVerifyCmd runs cmd by sh -c with vars added to this process's
// environment, its stdout and stderr captured together.
func runVerifyCmd(ctx context.Context, cmd string, vars []string, envErr error) *CommandCheck {
	c := &CommandCheck{Command: cmd, Env: vars, ExitCode: -1}
	if envErr != nil {
		c.Error = "finding DST's endpoints: " + envErr.Error()
		return c
	}
	x := exec.CommandContext(ctx, "sh", "-c", cmd)
	x.Env = append(os.Environ(), vars...)
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	b := out.Bytes()
	if len(b) > maxCmdOutput {
		b = append([]byte("…"), b[len(b)-maxCmdOutput:]...)
	}
	c.Output = string(b)
	var ee *exec.ExitError
	switch {
	case err == nil:
		c.ExitCode, c.OK = 0, true
	case errors.As(err, &ee):
		c.ExitCode = ee.ExitCode()
		if ee.ExitCode() < 0 {
			c.Error = "killed: " + ee.String()
		}
	default:
		c.Error = err.Error()
	}
	return c
}
