// Command handover moves the state of stateful services between EC2
// instances when an Auto Scaling group replaces one. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/handover-dev/handover/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
