// Command kvstore is handover's sample stateful service: an HTTP key-value
// store whose state lives in one directory, on the volume handover moves
// between instances. It acknowledges a write only after its record is
// fsynced, and takes part in the write-fence protocol
// (docs/fence-protocol.md) so that a snapshot of the volume holds every
// acknowledged write.
//
// The directory is --data or, without that flag, $HANDOVER_STATE_DIR:
// started as `handover agent -- kvstore`, kvstore gets the directory the
// agent prepared on the attached state volume, and the volume's epoch in
// $HANDOVER_EPOCH, without a flag in the user data.
//
// Routes: PUT (body ≤ 1 MiB, 204 once fsynced), GET and DELETE /kv/{key},
// where a key is one path segment of at most 1 KiB; GET /healthz (200 once
// the index is rebuilt, from hint files where they are intact and by
// replaying segments elsewhere, which happens before kvstore listens);
// GET /stats ({keys, segments, bytes}, of this store's own data); POST
// /admin/fence, /admin/unfence and /admin/retire; GET /admin/manifest (the
// content manifest of the data directory, its segments and hints, without
// fence.json, for env verify). Writes are refused with
// 503 and Retry-After while fenced; reads go on. Once retired, kvstore
// forwards every GET, PUT and DELETE of /kv/ to its successor and never
// answers one from its own data again (503 if the successor does not
// answer): the successor may have acknowledged writes this data lacks. A fence also seals the current segment and writes the hint
// files, so that an instance started from a snapshot of the volume indexes
// it without reading the values. SIGTERM or SIGINT stops it gracefully:
// in-flight requests finish, then the current segment is fsynced and
// closed.
//
// The fence survives a restart: kvstore writes its fenced flag, epoch and
// successor to fence.json in the data directory (atomically, before a
// fence or retire is confirmed) and starts with that state. A copy of the
// volume carries the fence along, so an instance started from it under a
// newer epoch must be told: if --epoch-file (a file holding an integer), or
// else $HANDOVER_EPOCH, names an epoch at least the persisted one, kvstore
// starts under that epoch and persists it — unfenced, or, with
// --start-fenced ($HANDOVER_START_FENCED=1, set by the agent when the
// controller tagged the volume), fenced until the controller unfences it
// (fence.StartState has the rule). A lower epoch changes nothing: the old
// instance restarting with its old epoch stays fenced (or retired) and
// never takes writes nobody will copy.
//
// kvstore must never answer a write with success before the write is on
// disk, nor admit a write while fenced.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/handover-dev/handover/examples/kvstore/store"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, log); err != nil {
		log.Error("kvstore failed", "error", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down: in-flight requests finish,
// the store is fsynced and closed.
func run(ctx context.Context, args []string, getenv func(string) string, log *slog.Logger) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	st, err := store.Open(cfg.DataDir, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing store", "error", err)
		}
	}()
	srv, err := newServer(st, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fenced, epoch := srv.gate.Fenced()
	log.Info("serving", "addr", ln.Addr().String(), "data", cfg.DataDir, "fenced", fenced, "epoch", epoch)
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
