package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is kvstore's configuration, from flags with environment fallbacks.
type Config struct {
	// DataDir (--data) is the state directory; without the flag,
	// $HANDOVER_STATE_DIR, which `handover agent` sets once the state
	// volume is ready. One of the two is required.
	DataDir string
	Listen  string // --listen: default $HANDOVER_PRIVATE_IP:8080, else 127.0.0.1:8080
	// EpochFile (--epoch-file) holds the epoch this instance was started
	// under; without it $HANDOVER_EPOCH is used. See the package comment.
	EpochFile string
	// Epoch is the epoch from EpochFile or $HANDOVER_EPOCH; 0 when neither
	// is given.
	Epoch int64
	// StartFenced (--start-fenced, or $HANDOVER_START_FENCED=1, which
	// `handover agent` sets from the volume's handover:start tag): a new
	// copy of the data starts fenced under Epoch and waits for the
	// controller to unfence it, once the old instance no longer answers
	// from its own data (docs/fence-protocol.md, "Starting").
	StartFenced     bool
	ShutdownTimeout time.Duration // --shutdown-timeout
	// Release is the release it runs from ($HANDOVER_RELEASE, which
	// `handover agent --release-mount` sets): GET /release answers it, as
	// the release controller asks before it lets a launch of a group in
	// a release channel complete. Empty: GET /release answers 404.
	Release string
}

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Listen: "127.0.0.1:8080", ShutdownTimeout: 30 * time.Second, Release: getenv("HANDOVER_RELEASE")}
	if ip := getenv("HANDOVER_PRIVATE_IP"); ip != "" {
		cfg.Listen = net.JoinHostPort(ip, "8080")
	}
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data", getenv("HANDOVER_STATE_DIR"), "state directory (default: $HANDOVER_STATE_DIR)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve on")
	fs.StringVar(&cfg.EpochFile, "epoch-file", "", "file holding this instance's epoch (default: $HANDOVER_EPOCH)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may take at shutdown")
	startFenced, err := envBool(getenv, "HANDOVER_START_FENCED")
	if err != nil {
		return Config{}, err
	}
	fs.BoolVar(&cfg.StartFenced, "start-fenced", startFenced, "start a new copy fenced under the epoch (default: $HANDOVER_START_FENCED)")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("parsing flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	raw, source := getenv("HANDOVER_EPOCH"), "HANDOVER_EPOCH"
	if cfg.EpochFile != "" {
		b, err := os.ReadFile(cfg.EpochFile)
		if err != nil {
			return Config{}, fmt.Errorf("reading epoch file: %w", err)
		}
		raw, source = string(b), cfg.EpochFile
	}
	if raw = strings.TrimSpace(raw); raw != "" {
		e, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return Config{}, fmt.Errorf("epoch from %s: %w", source, err)
		}
		cfg.Epoch = e
	}
	return cfg, cfg.Validate()
}

// envBool reads a boolean variable: empty is false; anything but
// 1/0/true/false is an error, since a typo must not start a copy unfenced.
func envBool(getenv func(string) string, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1, 0, true or false", name, v)
	}
	return b, nil
}

// Validate reports the first problem with cfg.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("no state directory: pass --data or set HANDOVER_STATE_DIR (handover agent sets it)")
	case c.Listen == "":
		return errors.New("--listen must not be empty")
	case c.Epoch < 0:
		return fmt.Errorf("epoch %d: must be at least 1", c.Epoch)
	case c.StartFenced && c.Epoch == 0:
		return errors.New("--start-fenced needs the epoch to start fenced under: --epoch-file or $HANDOVER_EPOCH")
	case c.ShutdownTimeout <= 0:
		return errors.New("--shutdown-timeout must be positive")
	}
	return nil
}
