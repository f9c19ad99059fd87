package env

import "context"

// VerifyRequest and VerifyReport are the least of env verify a migration
// needs, until Runner.Verify (env-verify) is on main: whoever lands second
// keeps one definition.

// VerifyRequest names the clone to verify.
type VerifyRequest struct {
	// CloneOpID is a clone in state Succeeded (a migration's holds its
	// quiesce: SRC is still fenced at the snapshots' point in time).
	CloneOpID string `json:"clone_op"`
}

// VerifyReport is what a verify found.
type VerifyReport struct {
	OK bool `json:"ok"`
	// Summary says what was compared, or what differed.
	Summary string `json:"summary,omitempty"`
}

// cloneVerifier verifies a clone: Runner.Verify.
type cloneVerifier interface {
	Verify(ctx context.Context, req VerifyRequest) (*VerifyReport, error)
}
