package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/handover-dev/handover/internal/clock"
)

// EnvServicePID is the supervised service's process id, given to
// --reload-cmd (e.g. kill -HUP "$HANDOVER_SERVICE_PID").
const EnvServicePID = "HANDOVER_SERVICE_PID"

// Unmounter is the optional capability of a System to let go of a release
// volume once the service has moved off it (umount -l), so that the
// controller can detach it.
type Unmounter interface {
	Unmount(ctx context.Context, dir string) error
}

// Service is the service the agent supervises when it serves a release:
// it stays, to switch releases under the service.
type Service struct {
	Path string
	Argv []string
	Env  []string
	// ReloadCmd, run with /bin/sh -c after the release link is flipped,
	// tells the service to take up the new release; empty means restart
	// it (SIGTERM, then SIGKILL after StopTimeout).
	ReloadCmd   string
	StopTimeout time.Duration
	// Poll is how often the agent looks for a release volume to switch to.
	Poll           time.Duration
	Stdout, Stderr io.Writer
}

// Supervise runs the service and keeps the release link on the release
// volume attached last (see releaseTarget): a rollout attaches the next
// release beside the current one, the agent mounts it, flips the link
// atomically and reloads or restarts the service; a rollback detaches it
// again and the agent flips back the same way. Signals the agent gets go to
// the service. It returns the service's exit status once the service exits
// by itself (not during a restart), or when ctx ends (after stopping it).
func Supervise(ctx context.Context, cfg Config, d Deps, res Result, svc Service) (int, error) {
	cfg = cfg.withDefaults()
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Sleep == nil {
		d.Sleep = sleep
	}
	if svc.StopTimeout == 0 {
		svc.StopTimeout = 10 * time.Second
	}
	if svc.Poll == 0 {
		svc.Poll = 5 * time.Second
	}
	log := d.Logger.With("instance-id", res.InstanceID)
	a := &run{cfg: cfg, d: d, log: log}
	ec2c, err := d.EC2(res.Region)
	if err != nil {
		return 1, fmt.Errorf("building the EC2 client for %s: %w", res.Region, err)
	}
	cur := res.releaseCurrent

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	type exit struct {
		gen int
		err error
	}
	exits := make(chan exit, 2)
	var child *exec.Cmd
	gen := 0
	start := func(rel ReleaseMounted) error {
		gen++
		c := exec.Command(svc.Path, svc.Argv[1:]...)
		c.Args = svc.Argv
		c.Env = append(res.Environ(svc.Env), EnvRelease+"="+rel.Release)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, svc.Stdout, svc.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := c.Start(); err != nil {
			return fmt.Errorf("starting the service %s: %w", svc.Path, err)
		}
		child = c
		g := gen
		go func() { exits <- exit{gen: g, err: c.Wait()} }()
		log.Info("service started", "pid", c.Process.Pid, "release", rel.Release)
		return nil
	}
	// stop ends the current child and waits for it.
	stop := func() {
		if child == nil {
			return
		}
		_ = child.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(svc.StopTimeout)
		defer t.Stop()
		for {
			select {
			case e := <-exits:
				if e.gen == gen {
					child = nil
					return
				}
			case <-t.C:
				_ = child.Process.Kill()
			}
		}
	}
	if err := start(cur); err != nil {
		return 1, err
	}
	tick := time.NewTicker(svc.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The agent was told to stop (SIGTERM at shutdown): the
			// service stops with it.
			stop()
			return 0, nil
		case s := <-sigs:
			if child != nil {
				_ = child.Process.Signal(s)
			}
		case e := <-exits:
			if e.gen != gen {
				continue // a child stopped for a restart
			}
			var ee *exec.ExitError
			if errors.As(e.err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal()), nil // as a shell reports it
				}
				return ee.ExitCode(), nil
			}
			if e.err != nil {
				return 1, e.err
			}
			return 0, nil
		case <-tick.C:
			v, ok, err := a.releaseTarget(ctx, ec2c, res.InstanceID)
			if err != nil || !ok || aws.ToString(v.VolumeId) == cur.VolumeID {
				if err != nil {
					log.Warn("looking for a release switch failed; retrying", "err", err)
				}
				continue
			}
			a.deadline = d.Clock.Now().Add(cfg.Timeout)
			next, err := a.mountRelease(ctx, res.InstanceID, v)
			if err != nil {
				log.Warn("preparing the next release failed; the service stays on its release", "release-volume-id", aws.ToString(v.VolumeId), "err", err)
				continue
			}
			if err := linkMount(cfg.ReleaseMount, next.Dir); err != nil {
				log.Error("flipping the release link failed; the service stays on its release", "err", err)
				continue
			}
			log.Info("release link flipped", "from", cur.Release, "to", next.Release, "release-volume-id", next.VolumeID, "target", next.Dir)
			if svc.ReloadCmd != "" && child != nil {
				c := exec.CommandContext(ctx, "/bin/sh", "-c", svc.ReloadCmd)
				c.Env = append(res.Environ(svc.Env), EnvRelease+"="+next.Release, EnvServicePID+"="+strconv.Itoa(child.Process.Pid))
				c.Stdout, c.Stderr = svc.Stdout, svc.Stderr
				if err := c.Run(); err != nil {
					log.Warn("the reload command failed; restarting the service instead", "cmd", svc.ReloadCmd, "err", err)
					stop()
					if err := start(next); err != nil {
						return 1, err
					}
				}
			} else {
				stop()
				if err := start(next); err != nil {
					return 1, err
				}
			}
			prev := cur
			cur = next
			if u, ok := d.System.(Unmounter); ok && cfg.InstanceDir == "" {
				if err := u.Unmount(ctx, prev.Dir); err != nil {
					log.Warn("unmounting the previous release failed", "dir", prev.Dir, "err", err)
				}
			}
			log.Info("release switched", "release", cur.Release, "previous", prev.Release)
		}
	}
}
