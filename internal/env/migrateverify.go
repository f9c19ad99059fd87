package env

import "context"

// VerifyRequest and VerifyReport are the least of env verify a migration
// needs, until Runner.Verify (env-verify) is on main: whoever lands second
// keeps one definition (this file goes; the migration reads only
// VerifyRequest.CloneOpID, VerifyReport.OK and VerifyReport.Mismatches).

// VerifyRequest names the clone to verify.
type VerifyRequest struct {
	// CloneOpID is a clone in state Succeeded (a migration's holds its
	// quiesce: SRC is still fenced at the snapshots' point in time).
	CloneOpID string `json:"clone_op"`
}

// VerifyReport is what a verify found.
type VerifyReport struct {
	OK bool `json:"ok"`
	// Mismatches say what differed.
	Mismatches []string `json:"mismatches,omitempty"`
}

// cloneVerifier verifies a clone: Runner.Verify (a Runner sets its
// VerifyClone to itself).
type cloneVerifier interface {
	Verify(ctx context.Context, req VerifyRequest) (*VerifyReport, error)
}
