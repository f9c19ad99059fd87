package dynamodb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// ErrTableNotFound: the ledger's table does not exist (or is not visible
// with these credentials and region). Not retryable: the table must be
// created first. It deliberately does not match ledger.ErrNotFound, which
// callers read as "the record is absent, safe to act on".
var ErrTableNotFound = errors.New("dynamodb ledger table not found")

// Outcomes that only this package acts on.
var (
	// errCondition: a conditional write's condition was false. Callers
	// that know what that means pass their own sentinel to translate
	// instead; the others tell the cases apart with a read.
	errCondition = errors.New("condition not met")
	// errTableInUse: CreateTable found the table already there (or being
	// created or deleted).
	errTableInUse = errors.New("table already exists")
	// errUnsupported: the endpoint does not implement the operation, as
	// emulators (dynalite) do for UpdateTimeToLive.
	errUnsupported = errors.New("operation not supported by this endpoint")
)

// translate is the one place DynamoDB error codes become ledger errors.
// onCondition is what a ConditionalCheckFailedException means for the call
// at hand (ledger.ErrExists for a create, errCondition when the caller must
// look closer); it is returned bare, because a condition that did not hold
// is an expected outcome and the SDK's message adds nothing to it. Other
// recognised codes are wrapped so the provider's message is kept; an error
// it does not recognise (throttling, access denied, the network) comes back
// unchanged — the SDK has already retried what is retryable. nil stays nil.
func translate(err error, table string, onCondition error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch code := ae.ErrorCode(); {
	case code == "ConditionalCheckFailedException":
		if onCondition == nil {
			onCondition = errCondition
		}
		return onCondition
	case code == "ResourceNotFoundException":
		return fmt.Errorf("%w: table %q (region and endpoint as configured): create it first with the key schema of this package's CreateTable (pk and sk, both strings): %w", ErrTableNotFound, table, err)
	case code == "ResourceInUseException":
		return fmt.Errorf("%w: %w", errTableInUse, err)
	case code == "UnknownOperationException":
		return fmt.Errorf("%w: %w", errUnsupported, err)
	case code == "ValidationException" && strings.Contains(ae.ErrorMessage(), "Item size"):
		// A record outgrew what one item holds; retrying cannot help.
		return fmt.Errorf("record too large for one DynamoDB item (400 KB): %w", err)
	}
	return err
}
