// Command handover moves the state of stateful services between EC2
// instances when an Auto Scaling group replaces one. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/handover-dev/handover/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	// Lambda's provided runtimes run the zip's "bootstrap" with no
	// arguments: the handover binary shipped under that name is the
	// function (docs/deploy-aws.md).
	if filepath.Base(os.Args[0]) == "bootstrap" && len(args) == 0 {
		args = []string{"lambda"}
	}
	code := cli.Execute(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
