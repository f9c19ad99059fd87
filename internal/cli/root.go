// Package cli holds handover's commands. Each command parses its flags,
// validates them with an error that says what to do, wires the packages
// that do the work, and prints text or --output json. It holds no protocol
// logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Execute runs handover with args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "handover:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "handover:", err)
	return 2
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "handover",
		Short: "Move a stateful service's data to the instance that replaces it",
		Long: `handover moves the state of a stateful service (one database per tenant, or any
daemon with data on disk) from an EC2 instance an Auto Scaling group is
replacing to its replacement: reads stay available, writes pause only briefly,
and no acknowledged write is lost.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSimulate(stdout, stderr), newLocalcloud(stdout, stderr), newController(stdout, stderr), newDemo(stdout, stderr), newAgent(stdout, stderr), newStatus(stdout), newMigrations(stdout), newLambda(stdout, stderr), newDeploy(stdout, stderr), newUpdate(stdout, stderr), newUpdates(stdout), newSignal(stdout, stderr), newDoctor(stdout, stderr), newSweep(stdout, stderr), newReplica(stdout, stderr), newLogs(stdout, stderr), newEnv(stdout, stderr), newRelease(stdout, stderr))
	return root
}

// output is the --output flag shared by commands.
type output string

func (o *output) String() string { return string(*o) }
func (o *output) Type() string   { return "text|json" }
func (o *output) Set(s string) error {
	switch s {
	case "text", "json":
		*o = output(s)
		return nil
	}
	return fmt.Errorf("unknown output %q: use text or json", s)
}

// newLogger builds the slog logger for a --log-level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	if level == "off" {
		return slog.New(slog.DiscardHandler), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("unknown --log-level %q: use debug, info, warn, error or off", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
