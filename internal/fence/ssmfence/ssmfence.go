// Package ssmfence fences a service through AWS Systems Manager Run
// Command instead of its network endpoints: the controller sends
// AWS-RunShellScript running `handover agent fence|unfence|health` on the
// instance, which calls the service's fence endpoints on the loopback
// interface. Services then need not expose their admin endpoints to the
// network at all, and the controller needs no route to the instances.
//
// Exit codes of `handover agent fence|unfence|health` carry the fence
// protocol's outcomes (ExitStale, ExitUnreachable); this package maps them
// back to fence.ErrStaleEpoch and fence.ErrUnreachable, so the state
// machine treats both transports alike.
package ssmfence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
)

// Exit codes of `handover agent fence|unfence|retire|health`.
const (
	ExitOK             = 0
	ExitStale          = 3 // the service has seen a newer epoch (HTTP 409)
	ExitUnreachable    = 4 // the service does not answer on the instance
	ExitNotImplemented = 5 // the service does not serve the endpoint (HTTP 404, 405, 501)
)

// API is the subset of *ssm.Client the fence calls.
type API interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, opts ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, opts ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

var _ API = (*ssm.Client)(nil)

// Service is handover.Service over SSM Run Command.
type Service struct {
	API API
	// Command is how the instance runs handover (default "handover").
	Command string
	// Port is the service's port on the instance's loopback interface.
	Port int
	// Timeout bounds one call, delivery included (default 60 s).
	Timeout time.Duration
	// Poll is the interval between GetCommandInvocation calls (default 500 ms).
	Poll   time.Duration
	Logger *slog.Logger
}

var (
	_ handover.Service = (*Service)(nil)
	_ handover.Retirer = (*Service)(nil)
)

// Fence implements handover.Service.
func (s *Service) Fence(ctx context.Context, t handover.Target, epoch int64) error {
	return s.run(ctx, t, "fence", fmt.Sprintf("--epoch %d", epoch))
}

// Unfence implements handover.Service.
func (s *Service) Unfence(ctx context.Context, t handover.Target, epoch int64) error {
	return s.run(ctx, t, "unfence", fmt.Sprintf("--epoch %d", epoch))
}

// Retire implements handover.Retirer: the agent on the old instance asks
// its service, on the loopback interface, to forward to the successor's
// private address and the service's port.
func (s *Service) Retire(ctx context.Context, t handover.Target, epoch int64, successor handover.Target) error {
	if successor.Addr == "" {
		return fmt.Errorf("retiring %s: the successor has no address", t.Instance)
	}
	addr, err := (&fence.Client{Port: s.port()}).SuccessorAddr(successor.Addr)
	if err != nil {
		return fmt.Errorf("retiring %s: %w", t.Instance, err)
	}
	return s.run(ctx, t, "retire", fmt.Sprintf("--epoch %d --successor %s", epoch, addr))
}

func (s *Service) port() int {
	if s.Port == 0 {
		return fence.DefaultPort
	}
	return s.Port
}

// Healthy implements handover.Service.
func (s *Service) Healthy(ctx context.Context, t handover.Target) error {
	return s.run(ctx, t, "health", "")
}

// run sends one command and waits for its outcome.
func (s *Service) run(ctx context.Context, t handover.Target, op, args string) error {
	if t.Instance == "" {
		return fmt.Errorf("%s through SSM needs the instance id: %w", op, fence.ErrUnreachable)
	}
	timeout, poll, command := s.Timeout, s.Poll, s.Command
	if timeout <= 0 {
		timeout = time.Minute
	}
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	if command == "" {
		command = "handover"
	}
	port := s.port()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	line := strings.TrimSpace(fmt.Sprintf("%s agent %s --port %d %s", command, op, port, args))
	out, err := s.API.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{t.Instance},
		Parameters:     map[string][]string{"commands": {line}},
		TimeoutSeconds: aws.Int32(int32(max(30, timeout/time.Second))),
		Comment:        aws.String("handover " + op),
	})
	if err != nil {
		if isUnreachable(err) {
			return fmt.Errorf("%s on %s through SSM: %v: %w", op, t.Instance, err, fence.ErrUnreachable)
		}
		return fmt.Errorf("%s on %s: sending the SSM command: %w", op, t.Instance, err)
	}
	id := aws.ToString(out.Command.CommandId)
	for {
		inv, err := s.API.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(id), InstanceId: aws.String(t.Instance)})
		var notYet *ssmtypes.InvocationDoesNotExist
		switch {
		case errors.As(err, &notYet):
			// Eventually consistent right after SendCommand.
		case err != nil:
			return fmt.Errorf("%s on %s: reading SSM command %s: %w", op, t.Instance, id, err)
		default:
			if done, err := outcome(op, t.Instance, inv); done {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s: SSM command %s did not finish within %s: %w", op, t.Instance, id, timeout, fence.ErrUnreachable)
		case <-time.After(poll):
		}
	}
}

// outcome maps a command invocation to the fence protocol's errors. done
// is false while the command is still on its way.
func outcome(op, instance string, inv *ssm.GetCommandInvocationOutput) (done bool, err error) {
	detail := strings.TrimSpace(aws.ToString(inv.StandardErrorContent))
	if detail == "" {
		detail = strings.TrimSpace(aws.ToString(inv.StandardOutputContent))
	}
	switch inv.Status {
	case ssmtypes.CommandInvocationStatusSuccess:
		return true, nil
	case ssmtypes.CommandInvocationStatusPending, ssmtypes.CommandInvocationStatusInProgress,
		ssmtypes.CommandInvocationStatusDelayed, ssmtypes.CommandInvocationStatusCancelling:
		return false, nil
	case ssmtypes.CommandInvocationStatusTimedOut, ssmtypes.CommandInvocationStatusCancelled:
		// Never delivered, or never finished: the instance may be cut
		// off, so the state machine treats it as unreachable.
		return true, fmt.Errorf("%s on %s: SSM command %s (%s): %w", op, instance, inv.Status, aws.ToString(inv.StatusDetails), fence.ErrUnreachable)
	}
	switch inv.ResponseCode {
	case ExitStale:
		return true, fmt.Errorf("%s on %s: %s: %w", op, instance, detail, fence.ErrStaleEpoch)
	case ExitUnreachable:
		return true, fmt.Errorf("%s on %s: the service does not answer on the instance (%s): %w", op, instance, detail, fence.ErrUnreachable)
	case ExitNotImplemented:
		return true, fmt.Errorf("%s on %s: %w", op, instance, fence.NewStatusError(http.StatusNotFound, nil, []byte(detail)))
	}
	if d := aws.ToString(inv.StatusDetails); d == "Undeliverable" || d == "DeliveryTimedOut" || d == "Terminated" {
		return true, fmt.Errorf("%s on %s: SSM %s: %w", op, instance, d, fence.ErrUnreachable)
	}
	return true, fmt.Errorf("%s on %s failed (exit %d): %s: %w", op, instance, inv.ResponseCode, detail, fence.ErrServer)
}

// isUnreachable: SendCommand refused the instance as not managed or not
// online, which for a fence means "cannot reach it".
func isUnreachable(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidInstanceId", "UnsupportedPlatformType":
		return true
	}
	return false
}
