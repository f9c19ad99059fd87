package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/ledger"
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
// unchanged — the SDK has already retried what is retryable; write marks
// the writes that are safe to repeat. nil stays nil.
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

// refusalCodes are the DynamoDB error codes that mean the request was
// turned away before it was acted on. The API reference says of each that
// the request "was denied due to request throttling" or that "throughput
// exceeds the current throughput limit for your account": throttling is
// decided at admission, so a throttled write changed nothing.
//
// Server errors (InternalServerError, ServiceUnavailable, any 5xx) are
// deliberately absent: AWS documents them as "OK to retry", which a
// conditional write always is, but never as not applied, and a server
// that fails while answering may already have committed the write. Nor is
// any network error or timeout here: the request may have arrived. Their
// outcome is unknown, and a caller must re-read rather than assume either
// way.
var refusalCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
}

// refused reports whether err is DynamoDB turning a request away unapplied.
func refused(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && refusalCodes[ae.ErrorCode()]
}

// write makes one write, which send must pass opt to, and translates its
// error; onCondition is as for translate. The error is marked
// ledger.ErrRetry only if every attempt the SDK made was refused: the SDK
// retries on its own, and returns the last attempt's error only, so a
// throttled final attempt may follow one that timed out after DynamoDB
// had applied it.
func (s *Store) write(onCondition error, send func(opt func(*dynamodb.Options)) error) error {
	a := &attempts{}
	err := send(a.watch)
	if err == nil {
		return nil
	}
	translated := translate(err, s.table, onCondition)
	if refused(err) && !a.unsure {
		return fmt.Errorf("%w: %w", ledger.ErrRetry, translated)
	}
	return translated
}

// attempts watches the failed attempts of one SDK call through its
// retryer, which the SDK asks about every failed attempt it sent.
type attempts struct {
	aws.Retryer
	// unsure: some attempt failed in a way that may have applied it.
	unsure bool
}

// watch is the per-call SDK option that puts a in front of the client's
// retryer. A call with a client that has none is judged by its final
// error alone.
func (a *attempts) watch(o *dynamodb.Options) {
	if o.Retryer != nil {
		a.Retryer = o.Retryer
		o.Retryer = a
	}
}

// IsErrorRetryable implements aws.Retryer, noting err on the way.
func (a *attempts) IsErrorRetryable(err error) bool {
	if !refused(err) {
		a.unsure = true
	}
	return a.Retryer.IsErrorRetryable(err)
}

// GetAttemptToken implements aws.RetryerV2 as the SDK does for a retryer
// without it.
func (a *attempts) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := a.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return a.Retryer.GetInitialToken(), nil
}
