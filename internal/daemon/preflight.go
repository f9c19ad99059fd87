package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The start checks (CheckCredentials, CheckQueue, CheckDeadLetter) tell a
// misconfiguration, which no retry can fix, from a passing fault, which
// the daemon rides out as it always has. `handover doctor` runs the same
// functions once each, so the controller and the audit never disagree.

// MisconfiguredError is a setting the controller cannot work with: retrying
// does not help, so the controller stops at start and says what to change.
type MisconfiguredError struct {
	// Check is what was being checked: "credentials", "queue" or
	// "dead-letter-queue".
	Check string
	// Err is what is wrong.
	Err error
	// Fix says what to change.
	Fix string
}

func (e *MisconfiguredError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Fix) }
func (e *MisconfiguredError) Unwrap() error { return e.Err }

// IsMisconfigured reports whether err is (or wraps) a *MisconfiguredError:
// never retry it.
func IsMisconfigured(err error) bool {
	var m *MisconfiguredError
	return errors.As(err, &m)
}

func misconfigured(check, fix string, format string, args ...any) *MisconfiguredError {
	return &MisconfiguredError{Check: check, Err: fmt.Errorf(format, args...), Fix: fix}
}

// Queues is what the start checks learned about the events queue and its
// dead-letter queue.
type Queues struct {
	// QueueARN is the events queue's ARN; it names the account and region.
	QueueARN string
	// RedrivePolicy and Policy are the events queue's attributes as SQS
	// returns them ("" when unset).
	RedrivePolicy, Policy string
	// DeadLetterARN and DeadLetterURL name the dead-letter queue of the
	// redrive policy.
	DeadLetterARN, DeadLetterURL string
	// ExplicitARN is the ARN of the queue --dead-letter-queue-url names,
	// when one is given: poison messages go there instead.
	ExplicitARN string
}

const credentialsFix = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run under an instance or task role " +
	"(for the local cloud any pair works: AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)"

// CheckCredentials resolves p once. A chain that finds nothing is a
// misconfiguration even when its last link failed on the network: on a
// machine without credentials that is how the instance metadata service,
// the chain's last resort, answers (the SDK has already retried it). Only
// a throttled or failing credential service is worth retrying.
func CheckCredentials(ctx context.Context, p aws.CredentialsProvider) error {
	if p == nil {
		return misconfigured("credentials", credentialsFix, "no AWS credentials are configured")
	}
	if _, err := p.Retrieve(ctx); err != nil {
		if ctx.Err() != nil || serviceTransient(err) {
			return fmt.Errorf("resolving AWS credentials: %w", err)
		}
		return misconfigured("credentials", credentialsFix, "no AWS credentials resolve (%v)", err)
	}
	return nil
}

// CheckQueue reads the events queue's attributes: that proves it exists
// and answers these credentials without taking a message from it (a
// receive would count against the messages' maxReceiveCount). The receive
// permission itself is proved by the daemon's first receive. It returns a
// *MisconfiguredError for a queue that is not there or not readable, and
// any other error for a fault worth retrying.
func CheckQueue(ctx context.Context, q Redrive, queueURL string) (Queues, error) {
	if err := validQueueURL(queueURL); err != nil {
		return Queues{}, misconfigured("queue", "set --queue-url (HANDOVER_QUEUE_URL) to the queue's URL, as `aws sqs get-queue-url --queue-name NAME` prints it", "%w", err)
	}
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameRedrivePolicy, sqstypes.QueueAttributeNamePolicy,
		},
	})
	if err != nil {
		return Queues{}, queueError("queue", "the events queue "+queueURL,
			fmt.Sprintf("create it (aws sqs create-queue --queue-name %s, or deploy the stack `handover deploy template` prints), or correct --queue-url (HANDOVER_QUEUE_URL)", queueName(queueURL)), err)
	}
	found := Queues{
		QueueARN:      out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		RedrivePolicy: out.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)],
		Policy:        out.Attributes[string(sqstypes.QueueAttributeNamePolicy)],
	}
	if found.QueueARN == "" {
		return Queues{}, fmt.Errorf("reading the events queue %s: SQS returned no QueueArn", queueURL)
	}
	return found, nil
}

// CheckDeadLetter checks that the events queue's redrive policy names a
// dead-letter queue that exists, so messages that keep failing are moved
// there rather than expire, and that explicitURL, if given, exists too. It
// fills in DeadLetterARN, DeadLetterURL and ExplicitARN. found is
// CheckQueue's result.
func CheckDeadLetter(ctx context.Context, q Redrive, found Queues, explicitURL string) (Queues, error) {
	const fix = "give the events queue a redrive policy naming an existing queue: " +
		`aws sqs set-queue-attributes --queue-url QUEUE_URL --attributes '{"RedrivePolicy":"{\"deadLetterTargetArn\":\"DLQ_ARN\",\"maxReceiveCount\":\"5\"}"}'` +
		" (the stack of `handover deploy template` has one)"
	if found.RedrivePolicy == "" {
		return found, misconfigured("dead-letter-queue", fix, "the events queue %s has no redrive policy, so no dead-letter queue", found.QueueARN)
	}
	arn := deadLetterARN(found.RedrivePolicy)
	if arn == "" {
		return found, misconfigured("dead-letter-queue", fix, "the redrive policy of %s names no deadLetterTargetArn: %s", found.QueueARN, found.RedrivePolicy)
	}
	found.DeadLetterARN = arn
	name := arn[strings.LastIndex(arn, ":")+1:]
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return found, queueError("dead-letter-queue", fmt.Sprintf("the dead-letter queue %s (the redrive policy of %s names it)", arn, found.QueueARN),
			fmt.Sprintf("create it (aws sqs create-queue --queue-name %s), or point the redrive policy at a queue that exists", name), err)
	}
	found.DeadLetterURL = aws.ToString(u.QueueUrl)
	if explicitURL != "" {
		if err := validQueueURL(explicitURL); err != nil {
			return found, misconfigured("dead-letter-queue", "set --dead-letter-queue-url (HANDOVER_DEAD_LETTER_QUEUE_URL) to a queue URL, or leave it empty to use the redrive policy's", "%w", err)
		}
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(explicitURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return found, queueError("dead-letter-queue", "the dead-letter queue "+explicitURL+" (--dead-letter-queue-url)",
				"create it, correct --dead-letter-queue-url (HANDOVER_DEAD_LETTER_QUEUE_URL), or leave it empty to use the redrive policy's", err)
		}
		found.ExplicitARN = out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	}
	return found, nil
}

// validQueueURL refuses what cannot be a queue URL before any call: SQS's
// answer to such a URL varies by endpoint.
func validQueueURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", s)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("%q is not a queue URL: its path must be /ACCOUNT/NAME", s)
	}
	return nil
}

// queueError classifies an SQS error from checking a queue: a missing,
// forbidden or mis-addressed queue, or refused credentials, is a
// misconfiguration (missingFix says what to do about a missing one);
// anything else is returned wrapped, to be retried.
func queueError(check, what, missingFix string, err error) error {
	code := apiCode(err)
	var missing *sqstypes.QueueDoesNotExist
	switch {
	case errors.As(err, &missing) || code == "AWS.SimpleQueueService.NonExistentQueue" || code == "QueueDoesNotExist":
		return misconfigured(check, missingFix, "%s does not exist (%s)", what, code)
	case code == "InvalidAddress":
		return misconfigured(check, "use the URL SQS gives for the queue in this region and endpoint (aws sqs get-queue-url --queue-name NAME)",
			"%s is not a queue of this endpoint (%s)", what, code)
	case deniedCodes[code]:
		return misconfigured(check, "grant the controller's role sqs:GetQueueAttributes, sqs:ReceiveMessage and sqs:DeleteMessage on the events queue "+
			"and sqs:GetQueueUrl and sqs:SendMessage on the dead-letter queue (the policy of `handover deploy template` does)",
			"reading %s is denied (%s)", what, code)
	case credentialCodes[code]:
		return misconfigured("credentials", "these credentials are refused: "+credentialsFix, "reading %s: the credentials are refused (%s)", what, code)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

var deniedCodes = map[string]bool{"AccessDenied": true, "AccessDeniedException": true, "KMS.AccessDeniedException": true}

var credentialCodes = map[string]bool{
	"InvalidClientTokenId": true, "UnrecognizedClientException": true, "SignatureDoesNotMatch": true,
	"IncompleteSignature": true, "ExpiredToken": true, "ExpiredTokenException": true, "InvalidSecurity": true,
	"MissingAuthenticationToken": true, "InvalidAccessKeyId": true, "AuthFailure": true,
}

var throttleCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"AWS.SimpleQueueService.RequestThrottled": true, "TooManyRequestsException": true, "SlowDown": true,
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// serviceTransient reports a throttled or failing (5xx) answer.
func serviceTransient(err error) bool {
	if throttleCodes[apiCode(err)] {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

func queueName(queueURL string) string {
	if i := strings.LastIndex(queueURL, "/"); i >= 0 && i < len(queueURL)-1 {
		return queueURL[i+1:]
	}
	return "NAME"
}

// startChecks runs the checks of CheckAtStart once and, when they pass,
// sets the dead-letter queue from the redrive policy unless one was given.
func (d *Daemon) startChecks(ctx context.Context) error {
	if err := CheckCredentials(ctx, d.creds); err != nil {
		return err
	}
	found, err := CheckQueue(ctx, d.queue, d.cfg.QueueURL)
	if err != nil {
		return err
	}
	if found, err = CheckDeadLetter(ctx, d.queue, found, d.cfg.DeadLetterURL); err != nil {
		return err
	}
	if d.cfg.DeadLetterURL == "" {
		d.cfg.DeadLetterURL = found.DeadLetterURL
	} else if found.ExplicitARN != found.DeadLetterARN {
		d.log.Warn("poison messages go to --dead-letter-queue-url, messages that keep failing to the redrive policy's queue",
			"dead-letter-queue", found.ExplicitARN, "redrive-dead-letter-queue", found.DeadLetterARN)
	}
	d.showDeadLetter(d.cfg.DeadLetterURL)
	return nil
}

// retryStartChecks repeats startChecks, backing off as a failed receive
// does, until they pass (true), find a misconfiguration (which stops the
// daemon through stop) or ctx ends (false).
func (d *Daemon) retryStartChecks(ctx context.Context, stop context.CancelCauseFunc) bool {
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		err := d.startChecks(ctx)
		switch {
		case err == nil:
			d.log.Info("queues checked; consuming", "queue", d.cfg.QueueURL, "dead-letter-queue", d.cfg.DeadLetterURL)
			return true
		case IsMisconfigured(err):
			d.log.Error("stopping: the controller cannot work with these settings", "err", err)
			stop(err)
			return false
		case ctx.Err() != nil:
			return false
		}
		d.log.Warn("checking the queues at start", "queue", d.cfg.QueueURL, "err", err, "retry-in", backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
}
