package env

import (
	"context"
	"errors"
	"fmt"

	"github.com/handover-dev/handover/internal/ledger"
)

// OpResource is a resource tagged handover:env-op, with the operation
// its tag names.
type OpResource struct {
	Owned
	Op string `json:"env_op"`
}

// OpVerdict is the sweeper's judgement of one resource an environment
// operation made.
type OpVerdict struct {
	OpResource
	// State is the operation's, "" when the ledger has no record of it.
	State string `json:"op_state,omitempty"`
	// Leaked resources are deleted by a sweep: their operation was
	// aborted, or the ledger has no record of it.
	Leaked bool   `json:"leaked"`
	Reason string `json:"reason"`
}

// EnvOps is the part of the ledger JudgeOpResources reads.
type EnvOps interface {
	GetEnvOp(ctx context.Context, id string) (*ledger.EnvOp, error)
	ListEnvOps(ctx context.Context, q ledger.EnvOpQuery) ([]*ledger.EnvOp, error)
}

// JudgeOpResources judges resources tagged handover:env-op against the
// ledger: an operation under way keeps its resources (it may still be
// recording them, or its abort deleting them); one aborted, or unknown to
// the ledger, has leaked them; one
// that ended otherwise keeps them: a clone's DST is an environment now
// (handover env abort deletes it). A ledger that knows no environment
// operation at all is likely not the one the operations were recorded in:
// nothing is judged leaked for want of a record there.
func JudgeOpResources(ctx context.Context, led EnvOps, rs []OpResource) ([]OpVerdict, error) {
	all, err := led.ListEnvOps(ctx, ledger.EnvOpQuery{})
	if err != nil {
		return nil, fmt.Errorf("listing environment operations: %w", err)
	}
	ops := map[string]*ledger.EnvOp{}
	for _, o := range all {
		ops[o.ID] = o
	}
	out := make([]OpVerdict, 0, len(rs))
	for _, r := range rs {
		v := OpVerdict{OpResource: r}
		op, ok := ops[r.Op]
		if !ok {
			// Recorded since the listing?
			o, err := led.GetEnvOp(ctx, r.Op)
			switch {
			case err == nil:
				op, ok = o, true
			case !errors.Is(err, ledger.ErrNotFound):
				return nil, fmt.Errorf("reading environment operation %s: %w", r.Op, err)
			}
		}
		switch {
		case !ok && len(all) == 0:
			v.Reason = fmt.Sprintf("operation %s is not in this ledger, which knows no environment operation at all: is it the one the operation was recorded in? kept", r.Op)
		case !ok:
			v.Leaked, v.Reason = true, fmt.Sprintf("operation %s has no record in the ledger: nothing will ever delete it", r.Op)
		default:
			v.State = string(op.State)
			if leaked, reason, ok := scratchVerdict(op, r); ok {
				v.Leaked, v.Reason = leaked, reason
				break
			}
			switch {
			case op.State == ledger.UpdateAborted:
				v.Leaked, v.Reason = true, fmt.Sprintf("%s %s was aborted: the abort should have deleted it", op.Op, op.ID)
			case !op.State.Terminal():
				v.Reason = fmt.Sprintf("%s %s is under way (%s)", op.Op, op.ID, op.Phase)
			default:
				v.Reason = fmt.Sprintf("%s %s ended %s: it is part of what it made (handover env abort %s deletes it)", op.Op, op.ID, op.State, op.Environment)
			}
		}
		out = append(out, v)
	}
	return out, nil
}
