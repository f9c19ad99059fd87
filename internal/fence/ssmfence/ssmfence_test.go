package ssmfence

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
)

// fakeSSM answers GetCommandInvocation from a script of answers, one per
// call, the last repeated.
type fakeSSM struct {
	mu      sync.Mutex
	sendErr error
	answers []invocation
	sent    []*ssm.SendCommandInput
	gets    int
}

type invocation struct {
	out *ssm.GetCommandInvocationOutput
	err error
}

func (f *fakeSSM) SendCommand(_ context.Context, in *ssm.SendCommandInput, _ ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, in)
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	return &ssm.SendCommandOutput{Command: &ssmtypes.Command{CommandId: aws.String("cmd-1")}}, nil
}

func (f *fakeSSM) GetCommandInvocation(context.Context, *ssm.GetCommandInvocationInput, ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.answers[min(f.gets, len(f.answers)-1)]
	f.gets++
	return a.out, a.err
}

func status(s ssmtypes.CommandInvocationStatus, code int32, stderr string) invocation {
	return invocation{out: &ssm.GetCommandInvocationOutput{Status: s, ResponseCode: code, StandardErrorContent: aws.String(stderr)}}
}

func TestFence(t *testing.T) {
	notYet := invocation{err: &ssmtypes.InvocationDoesNotExist{Message: aws.String("not yet")}}
	tests := []struct {
		name    string
		sendErr error
		answers []invocation
		want    error // nil, fence.ErrStaleEpoch, fence.ErrUnreachable, fence.ErrServer
	}{
		{name: "fenced", answers: []invocation{notYet, status(ssmtypes.CommandInvocationStatusInProgress, -1, ""), status(ssmtypes.CommandInvocationStatusSuccess, 0, "")}},
		{name: "stale epoch", answers: []invocation{status(ssmtypes.CommandInvocationStatusFailed, ExitStale, "stale epoch: the service has seen 9")}, want: fence.ErrStaleEpoch},
		{name: "service down on the instance", answers: []invocation{status(ssmtypes.CommandInvocationStatusFailed, ExitUnreachable, "connection refused")}, want: fence.ErrUnreachable},
		{name: "instance not managed", sendErr: &smithy.GenericAPIError{Code: "InvalidInstanceId", Message: "Instances not in a valid state for account"}, want: fence.ErrUnreachable},
		{name: "never delivered", answers: []invocation{status(ssmtypes.CommandInvocationStatusTimedOut, -1, "")}, want: fence.ErrUnreachable},
		{name: "other failure", answers: []invocation{status(ssmtypes.CommandInvocationStatusFailed, 1, "handover: command not found")}, want: fence.ErrServer},
		{name: "no answer in time", answers: []invocation{status(ssmtypes.CommandInvocationStatusPending, -1, "")}, want: fence.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSSM{sendErr: tt.sendErr, answers: tt.answers}
			s := &Service{API: f, Command: "/usr/local/bin/handover", Port: 9000, Timeout: 300 * time.Millisecond, Poll: 10 * time.Millisecond}
			err := s.Fence(t.Context(), handover.Target{Instance: "i-0abc", Addr: "10.0.0.1"}, 7)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Fence = %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Fence = %v, want %v", err, tt.want)
			}
			if len(f.sent) != 1 {
				t.Fatalf("%d commands sent, want 1", len(f.sent))
			}
			in := f.sent[0]
			if aws.ToString(in.DocumentName) != "AWS-RunShellScript" || in.InstanceIds[0] != "i-0abc" ||
				in.Parameters["commands"][0] != "/usr/local/bin/handover agent fence --port 9000 --epoch 7" {
				t.Errorf("command sent: %+v %v", in, in.Parameters)
			}
		})
	}
}

func TestNeedsInstanceID(t *testing.T) {
	s := &Service{API: &fakeSSM{}}
	if err := s.Healthy(t.Context(), handover.Target{Addr: "10.0.0.1"}); !errors.Is(err, fence.ErrUnreachable) || !strings.Contains(err.Error(), "instance id") {
		t.Errorf("Healthy without an instance id = %v", err)
	}
}

// TestRetire: the retire goes through the agent on the old instance, naming
// the successor's address with the service port; the agent's exit codes
// come back as the protocol's errors, "no such endpoint" included.
func TestRetire(t *testing.T) {
	tests := []struct {
		name    string
		answers []invocation
		check   func(error) bool
	}{
		{"retired", []invocation{status(ssmtypes.CommandInvocationStatusSuccess, 0, "")}, func(err error) bool { return err == nil }},
		{"stale", []invocation{status(ssmtypes.CommandInvocationStatusFailed, ExitStale, "stale epoch")}, func(err error) bool { return errors.Is(err, fence.ErrStaleEpoch) }},
		{"not implemented", []invocation{status(ssmtypes.CommandInvocationStatusFailed, ExitNotImplemented, "404 page not found")}, fence.IsNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSSM{answers: tt.answers}
			s := &Service{API: f, Port: 9000, Timeout: 300 * time.Millisecond, Poll: 10 * time.Millisecond}
			err := s.Retire(t.Context(), handover.Target{Instance: "i-old", Addr: "10.0.0.1"}, 7, handover.Target{Instance: "i-new", Addr: "10.0.0.2"})
			if !tt.check(err) {
				t.Fatalf("Retire = %v", err)
			}
			if got := f.sent[0].Parameters["commands"][0]; got != "handover agent retire --port 9000 --epoch 7 --successor 10.0.0.2:9000" {
				t.Errorf("command %q", got)
			}
		})
	}
}
