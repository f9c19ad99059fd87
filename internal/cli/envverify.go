package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/ledger"
)

func newEnvVerify(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun bool
	var verifyCmd, passwordFile, sslMode string
	var servicePort int
	cmd := &cobra.Command{
		Use:   "verify SRC DST",
		Short: "Check that a clone's DST holds SRC's data as of the clone's quiesce point",
		Long: `verify checks the latest succeeded clone of SRC into DST (handover env clone SRC
DST) against what SRC held at the clone's quiesce point:

  volumes   each DST database's data directory, its content manifest read
            through the service's GET /admin/manifest, against the manifest
            SRC's database served while it was fenced for its snapshot (a
            clone with --manifests=false or --quiesce standby recorded none:
            not compared, and said so)
  tables    every table of each of DST's RDS instances, its row count and a
            checksum (SHA-256 of each row's md5 in primary-key order), against
            the same table in the clone's RDS snapshot, restored into a
            scratch instance verify-OPID-INSTANCE that is deleted after
  buckets   each of DST's buckets, its keys and each object's SHA-256,
            against what the clone's copy wrote (SRC may have moved on since;
            the copy is of SRC's current versions after the un-quiesce)
  command   --verify-cmd CMD, run by sh -c with DST's endpoints in its
            environment, must exit 0; its output goes into the report

It needs the RDS master password to read the tables: $HANDOVER_RDS_PASSWORD, or
--rds-password-file (a restored instance keeps its source's password).

The result is recorded on the clone (a migration's drop refuses unless it
passed). A scratch instance is recorded before its restore is asked for and
tagged handover:env-op and handover:verify with the clone's id: a verify
killed at any point is taken up by the next run (once the killed run's lease
lapses, --lease-ttl), which reuses its scratch instances and deletes them.

It exits 0 when everything matches, 1 listing every mismatch, 2 on bad
input. --dry-run says what would be compared and changes nothing.

--verify-cmd sees, besides this process's environment: HANDOVER_ENV (DST),
HANDOVER_SOURCE_ENV, HANDOVER_CLONE_OP, HANDOVER_LB_DNS, HANDOVER_LB_PORT and
HANDOVER_LB_URL (DST's entry point), HANDOVER_LB_<NAME>_DNS,
HANDOVER_RDS_<ID>_ENDPOINT (host:port), HANDOVER_RDS_INSTANCES,
HANDOVER_BUCKET_<NAME> and HANDOVER_BUCKETS; <NAME> and <ID> are DST's names
uppercased with every other character than a letter or digit as _.`,
		Example: `  # what would be compared
  handover env verify staging prod --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # compare, and run a smoke test against DST's entry point
  HANDOVER_RDS_PASSWORD=... handover env verify staging prod \
      --verify-cmd 'curl -fsS "$HANDOVER_LB_URL/healthz"'

  # machine-readable
  handover env verify staging prod --output json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &exitError{code: 2, err: fmt.Errorf("%s takes two arguments, SRC and DST (the environments of a clone); got %d", cmd.CommandPath(), len(args))}
			}
			for _, a := range args {
				if err := env.CheckName(a); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			t, r, err := f.runner(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			op, err := r.FindClone(cmd.Context(), args[0], args[1])
			if err != nil {
				return envErr(err)
			}
			req := env.VerifyRequest{CloneOpID: op.ID, VerifyCmd: verifyCmd}
			if dryRun {
				plan, err := r.PlanVerify(cmd.Context(), req)
				if err != nil {
					return envErr(err)
				}
				if f.out == "json" {
					return printJSON(stdout, plan)
				}
				printVerifyPlan(stdout, plan)
				return nil
			}
			password, err := rdsPassword(passwordFile)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if password == "" && cloneHasRDS(op.Cloning.Items) {
				return &exitError{code: 2, err: fmt.Errorf("clone %s has RDS instances, whose tables verify reads as their master user: set $HANDOVER_RDS_PASSWORD or --rds-password-file to its password", op.ID)}
			}
			c := t.aws
			b := awscloud.NewCloneBuilder(ec2.NewFromConfig(c), autoscaling.NewFromConfig(c), elb.NewFromConfig(c), rds.NewFromConfig(c), t.s3, c.Region)
			r.Clone = b
			r.Verifier = awscloud.NewVerifier(b, rds.NewFromConfig(c))
			r.Tables = env.PGTables{Password: password, SSLMode: sslMode}
			r.Manifests = env.FenceManifests{Client: &fence.Client{Port: servicePort}}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			req.Wait = func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(f.poll):
					return nil
				}
			}
			rep, err := r.Verify(ctx, req)
			if err != nil {
				return envErr(err)
			}
			if f.out == "json" {
				if err := printJSON(stdout, rep); err != nil {
					return err
				}
			} else {
				printVerifyReport(stdout, rep)
			}
			if !rep.OK {
				return &exitError{code: 1, err: fmt.Errorf("%s does not match %s at the quiesce point of clone %s: %s", rep.Destination, rep.Source, rep.CloneOpID, strings.Join(rep.Mismatches, "; "))}
			}
			return nil
		},
	}
	f.register(cmd, true)
	fl := cmd.Flags()
	fl.BoolVar(&dryRun, "dry-run", false, "say what would be compared and change nothing")
	fl.StringVar(&verifyCmd, "verify-cmd", "", "a command (sh -c) run against DST with its endpoints in the environment; must exit 0")
	fl.StringVar(&passwordFile, "rds-password-file", "", "file holding the RDS master password (default: $HANDOVER_RDS_PASSWORD)")
	fl.StringVar(&sslMode, "rds-sslmode", envOr("PGSSLMODE", ""), "libpq sslmode for the RDS connections (default: $PGSSLMODE, else prefer)")
	fl.IntVar(&servicePort, "service-port", fence.DefaultPort, "port of the service's fence endpoints on each instance, GET /admin/manifest among them (the controller's --service-port)")
	return cmd
}

// rdsPassword reads --rds-password-file, else $HANDOVER_RDS_PASSWORD.
func rdsPassword(file string) (string, error) {
	if file == "" {
		return os.Getenv("HANDOVER_RDS_PASSWORD"), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--rds-password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func cloneHasRDS(items []ledger.EnvItem) bool {
	for _, it := range items {
		if it.Kind == "rds-snapshot" {
			return true
		}
	}
	return false
}

func printVerifyPlan(w io.Writer, p *env.VerifyPlan) {
	fmt.Fprintf(w, "verify of clone %s (%s into %s), nothing changed:\n", p.CloneOpID, p.Source, p.Destination)
	section := func(name string, lines []string, none string) {
		fmt.Fprintf(w, "\n%s\n", name)
		for _, l := range lines {
			fmt.Fprintf(w, "   %s\n", l)
		}
		if len(lines) == 0 {
			fmt.Fprintf(w, "   %s\n", none)
		}
	}
	section("volumes", p.Volumes, "no database")
	section("tables", p.Tables, "no RDS instance")
	section("buckets", p.Buckets, "no bucket")
	cmd := []string{}
	if p.Command != "" {
		cmd = append(cmd, p.Command+" (sh -c, DST's endpoints in HANDOVER_* variables), must exit 0")
	}
	section("command", cmd, "none (--verify-cmd)")
	if len(p.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
}

func okWord(ok bool, err string) string {
	switch {
	case ok && err != "":
		return "skipped"
	case ok:
		return "ok"
	case err != "":
		return "error"
	}
	return "DIFFERS"
}

func printVerifyReport(w io.Writer, rep *env.VerifyReport) {
	result := "passed"
	if !rep.OK {
		result = fmt.Sprintf("FAILED, %d mismatches", len(rep.Mismatches))
		if len(rep.Mismatches) == 1 {
			result = "FAILED, 1 mismatch"
		}
	}
	fmt.Fprintf(w, "verify of clone %s (%s against %s at the quiesce point): %s\n", rep.CloneOpID, rep.Destination, rep.Source, result)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tNAME\tRESULT\tDETAIL")
	for _, v := range rep.Volumes {
		detail := fmt.Sprintf("%d files, %.19s; %s's at the quiesce point %.19s", v.Files, v.Got, v.From, v.Want)
		if v.Error != "" {
			detail = v.Error
		} else if len(v.Differences) > 0 {
			detail = strings.Join(v.Differences, "; ")
		}
		fmt.Fprintf(tw, "volume\t%s\t%s\t%s\n", v.Database, okWord(v.OK, v.Error), detail)
	}
	for _, t := range rep.Tables {
		detail := fmt.Sprintf("%d rows, %.19s; snapshot %d rows, %.19s", t.Rows, t.Sum, t.WantRows, t.WantSum)
		if t.Error != "" {
			detail = t.Error
		}
		fmt.Fprintf(tw, "table\t%s %s\t%s\t%s\n", t.Instance, t.Table, okWord(t.OK, t.Error), detail)
	}
	for _, b := range rep.Buckets {
		detail := fmt.Sprintf("%d objects; the copy wrote %d", b.Objects, b.WantObjects)
		if b.Error != "" {
			detail = b.Error
		} else if len(b.Differences) > 0 {
			detail = strings.Join(b.Differences, "; ")
		}
		fmt.Fprintf(tw, "bucket\t%s\t%s\t%s\n", b.Bucket, okWord(b.OK, b.Error), detail)
	}
	if c := rep.Command; c != nil {
		shown := c.Command
		if len(shown) > 60 {
			shown = shown[:57] + "..."
		}
		detail := fmt.Sprintf("exit %d: %s", c.ExitCode, shown)
		if c.Error != "" {
			detail = c.Error + ": " + shown
		}
		fmt.Fprintf(tw, "command\t--verify-cmd\t%s\t%s\n", okWord(c.OK, c.Error), detail)
	}
	tw.Flush()
	if c := rep.Command; c != nil && c.Output != "" {
		fmt.Fprintf(w, "\n--verify-cmd output:\n%s", c.Output)
		if !strings.HasSuffix(c.Output, "\n") {
			fmt.Fprintln(w)
		}
	}
	for _, s := range rep.Scratch {
		state := "deleted"
		if !s.Deleted {
			state = "NOT deleted"
		}
		fmt.Fprintf(w, "scratch instance %s (from %s): %s\n", s.Name, s.Snapshot, state)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(rep.Mismatches) > 0 {
		fmt.Fprintln(w, "\nmismatches:")
		for _, m := range rep.Mismatches {
			fmt.Fprintf(w, "  - %s\n", m)
		}
	}
}
