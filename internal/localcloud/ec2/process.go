package ec2

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// An instance's OS is a process group: the user data script (or the image's
// command) and whatever it starts. Stopping sends SIGTERM to the group,
// then SIGKILL after a grace period, and waits until no member is left.

type proc struct {
	pgid int
	// done is closed when the group leader has exited and been reaped.
	done chan struct{}
}

// hostEnv are the variables instances inherit from the local cloud's own
// environment; everything else comes from the image and the instance.
var hostEnv = []string{"PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "TZ"}

// bootEnv is everything an instance process starts with.
type bootEnv struct {
	InstanceID, InstanceDir, PrivateIP, Zone, IMDSURL string
	Image                                             Image
}

func (b bootEnv) environ() []string {
	var env []string
	for _, k := range hostEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range b.Image.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		"HANDOVER_INSTANCE_ID="+b.InstanceID,
		"HANDOVER_INSTANCE_DIR="+b.InstanceDir,
		"HANDOVER_PRIVATE_IP="+b.PrivateIP,
		"HANDOVER_AVAILABILITY_ZONE="+b.Zone,
		"HANDOVER_IMDS_ENDPOINT="+b.IMDSURL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+b.IMDSURL,
		"HANDOVER_IMAGE_COMMAND="+shellQuote(b.Image.Command),
	)
}

// shellQuote writes args so that /bin/sh reads them back unchanged.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// boot starts an instance's processes: its user data as a shell script if
// it has any, else the image's command (or the image's command in any case,
// for an image that runs the user data itself). Output goes to console.log. onExit
// runs once the group leader has exited.
func boot(b bootEnv, userData []byte, onExit func(error)) (*proc, error) {
	if err := os.MkdirAll(filepath.Join(b.InstanceDir, "volumes"), 0o755); err != nil {
		return nil, err
	}
	console, err := os.OpenFile(filepath.Join(b.InstanceDir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	argv := b.Image.Command
	env := b.environ()
	if len(userData) > 0 {
		script := filepath.Join(b.InstanceDir, "user-data")
		if err := os.WriteFile(script, userData, 0o755); err != nil {
			console.Close()
			return nil, err
		}
		env = append(env, "HANDOVER_USER_DATA="+script)
		if !b.Image.RunsUserData {
			argv = []string{"/bin/sh", script}
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = b.InstanceDir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = console, console
	// Its own process group, so that stopping reaches whatever it started;
	// and killed if the local cloud itself dies, as an instance would be.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(console, "localcloud: booting %s failed: %v\n", b.InstanceID, err)
		console.Close()
		return nil, err
	}
	p := &proc{pgid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		console.Close()
		close(p.done)
		onExit(err)
	}()
	return p, nil
}

// alive reports whether any member of the group is still running (zombies
// waiting for a parent to reap them do not count).
func (p *proc) alive() bool {
	if err := syscall.Kill(-p.pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	select {
	case <-p.done:
	default:
		return true // the leader itself runs
	}
	return groupHasLiveMember(p.pgid)
}

// groupHasLiveMember scans /proc for a non-zombie process of group pgid.
func groupHasLiveMember(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell; kill(2) said the group exists
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return true
		}
	}
	return false
}

// stop ends the group: SIGTERM, then SIGKILL after grace (or at once once
// the leader is gone and only stragglers remain past grace), then waits a
// bounded time for the last member to go.
func (p *proc) stop(grace time.Duration) {
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && p.alive() {
		select {
		case <-p.done:
			time.Sleep(20 * time.Millisecond) // let stragglers finish their SIGTERM
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	<-p.done
	for end := time.Now().Add(5 * time.Second); p.alive() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
}
