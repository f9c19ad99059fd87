package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/lambdahandler"
	"github.com/handover-dev/handover/internal/logs"
)

func newLambda(stdout, stderr io.Writer) *cobra.Command {
	var (
		f      controllerFlags
		lf     logsFlags
		mode   string
		margin time.Duration
		limit  time.Duration
		invoke string
	)
	cmd := &cobra.Command{
		Use:   "lambda",
		Short: "Run the handover controller (or, with --mode logs, the ELB log pipeline) as an AWS Lambda function",
		Long: `lambda is the controller as a Lambda function (runtime provided.al2023, the
handover binary as bootstrap, invoked as "handover lambda"). Two kinds of
invocation:

  an SQS batch from the events queue (event source mapping with
  ReportBatchItemFailures): each record is handled exactly as the long-running
  controller handles a message. A record whose effect cannot be committed now
  is reported in batchItemFailures, so only it is redelivered; a poison record
  goes to the dead-letter queue with the reason. The migrations the batch
  touched are then advanced while the invocation has time.

  a scheduled EventBridge event ("Scheduled Event", e.g. rate(1 minute)):
  reconcile (which advances every unfinished migration and adopts launches no
  event told of), then the sweeper.

Configuration comes from the environment, as Lambda gives it: HANDOVER_LEDGER
(dynamodb://TABLE?region=… on AWS), HANDOVER_QUEUE_URL,
HANDOVER_DEAD_LETTER_QUEUE_URL (default: the queue's redrive policy),
HANDOVER_HOOK_PREFIX, and the flags' other HANDOVER_* variables. 'handover
deploy template --mode lambda' writes all of it. With --invoke FILE it handles
one payload from a file and prints the answer, without Lambda.

With --mode logs (env HANDOVER_LAMBDA_MODE=logs) it is the ELB access-log
pipeline of 'handover logs' instead, invoked by S3 event notifications:

  directly (the bucket notifies the function): the event's log objects are
  indexed; what is left when time runs short, or when the store keeps
  failing, goes to the queue (HANDOVER_QUEUE_URL) as continuations.

  through SQS (event source mapping with ReportBatchItemFailures): each
  record's objects are indexed; a record that fails is reported in
  batchItemFailures, so only it comes again.

Before the deadline (less --deadline-margin) the function stops after the
bulk in flight, saves where it got to in a continuation message (bucket, key,
byte offset) and hands the records it had no time for to new messages, so a
file of any size is indexed across invocations, each line once. Each
invocation ends with one CloudWatch Embedded Metric Format line on stdout
(on stderr with --invoke): objects, lines, indexed, duplicates, retries,
dead letters and lag, namespace handover/logs, dimension FunctionName.
Configuration: HANDOVER_LOGS_ENDPOINT, HANDOVER_LOGS_DLQ_URL,
HANDOVER_QUEUE_URL, HANDOVER_LOGS_INDEX_PREFIX, HANDOVER_LOGS_SIGV4,
HANDOVER_LOGS_PARSE_WORKERS;
'handover deploy template --logs' writes them. See docs/logs.md.`,
		Example: `  # in the function (provided.al2023): bootstrap is the handover binary
  ./bootstrap lambda

  # try a payload locally against the local cloud
  handover lambda --invoke sqs-batch.json --endpoint-url http://127.0.0.1:4566 \
    --queue-url http://127.0.0.1:4566/000000000000/handover-events --ledger sqlite:///tmp/ledger.db

  # the log pipeline, with an S3 event from a file
  handover lambda --mode logs --invoke s3-event.json --endpoint-url http://127.0.0.1:4566 \
    --endpoint http://127.0.0.1:4566/_opensearch --dlq-url http://127.0.0.1:4566/000000000000/elb-logs-dead \
    --queue-url http://127.0.0.1:4566/000000000000/elb-logs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch mode {
			case "controller":
				return runLambda(cmd.Context(), f, invoke, stdout, stderr)
			case "logs":
				if v := os.Getenv("HANDOVER_LOGS_DEADLINE_MARGIN"); v != "" && !cmd.Flags().Changed("deadline-margin") {
					d, err := time.ParseDuration(v)
					if err != nil {
						return &exitError{code: 2, err: fmt.Errorf("HANDOVER_LOGS_DEADLINE_MARGIN=%q is not a duration (e.g. 30s): %v", v, err)}
					}
					margin = d
				}
				lf.endpointURL, lf.region, lf.logLevel = f.endpoint, f.region, f.logLevel
				return runLogsLambda(cmd.Context(), lf, f.queueURL, margin, limit, invoke, stdout, stderr)
			}
			return &exitError{code: 2, err: fmt.Errorf("unknown --mode %q: use controller or logs", mode)}
		},
	}
	registerEngineFlags(cmd, &f)
	cmd.Flags().StringVar(&mode, "mode", envOr("HANDOVER_LAMBDA_MODE", "controller"), "controller (the handover controller) or logs (the ELB access-log pipeline) (env HANDOVER_LAMBDA_MODE)")
	lf.registerPipeline(cmd)
	cmd.Flags().DurationVar(&margin, "deadline-margin", 30*time.Second, "with --mode logs: hand the rest on to a continuation once less than this is left before the deadline (env HANDOVER_LOGS_DEADLINE_MARGIN)")
	cmd.Flags().StringVar(&invoke, "invoke", "", "handle one invocation payload from this file (- for stdin) and print the answer")
	cmd.Flags().DurationVar(&limit, "invoke-timeout", 0, "with --mode logs and --invoke: the invocation's time, as the function's timeout gives it (default: none)")
	return cmd
}

// readPayload reads an --invoke payload.
func readPayload(invoke string) ([]byte, error) {
	var payload []byte
	var err error
	if invoke == "-" {
		payload, err = io.ReadAll(os.Stdin)
	} else {
		payload, err = os.ReadFile(invoke)
	}
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("reading the payload: %w", err)}
	}
	return payload, nil
}

func notInLambda(invoke, alternative string) error {
	if invoke == "" && os.Getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		return &exitError{code: 2, err: fmt.Errorf("not running inside AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set): pass --invoke FILE to handle one payload, or run %s", alternative)}
	}
	return nil
}

// runLogsLambda is the log pipeline as a function.
func runLogsLambda(ctx context.Context, f logsFlags, queueURL string, margin, limit time.Duration, invoke string, stdout, stderr io.Writer) error {
	if err := notInLambda(invoke, "`handover logs run` to consume the queue from a server"); err != nil {
		return err
	}
	if margin <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--deadline-margin %v must be positive", margin)}
	}
	var payload []byte
	if invoke != "" {
		var err error
		if payload, err = readPayload(invoke); err != nil {
			return err
		}
	}
	// Metrics as Embedded Metric Format lines, which CloudWatch Logs
	// turns into metrics: on stdout in Lambda, on stderr with --invoke
	// (stdout is the invocation's answer).
	emf := &logs.EMF{W: stdout, Function: envOr("AWS_LAMBDA_FUNCTION_NAME", "handover-logs")}
	if invoke != "" {
		emf.W = stderr
	}
	f.observer = emf
	p, _, awsCfg, err := f.pipeline(ctx, stderr)
	if err != nil {
		return err
	}
	if queueURL == "" {
		queueURL = os.Getenv("HANDOVER_LOGS_QUEUE_URL")
	}
	h := logs.NewLambda(p, sqs.NewFromConfig(awsCfg), queueURL)
	h.Margin, h.EMF = margin, emf
	if invoke == "" {
		awslambda.StartWithOptions(h.Invoke, awslambda.WithContext(ctx))
		return nil
	}
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func runLambda(ctx context.Context, f controllerFlags, invoke string, stdout, stderr io.Writer) error {
	if err := notInLambda(invoke, "`handover controller` to consume the queue from a server"); err != nil {
		return err
	}
	cfg, target, err := configFromFlags(f)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var payload []byte
	if invoke != "" {
		if payload, err = readPayload(invoke); err != nil {
			return err
		}
	}
	eng, err := buildEngine(ctx, f, cfg, target, log)
	if err != nil {
		return err
	}
	defer eng.led.Close()
	q := sqs.NewFromConfig(eng.aws)
	dlq := f.dlqURL
	if dlq == "" {
		if dlq, err = daemon.FindDeadLetter(ctx, q, f.queueURL); err != nil {
			log.Warn("poison records will be retried until SQS ends them", "err", err)
		}
	}
	h := lambdahandler.New(eng.ctl, q, dlq, log)
	if invoke == "" {
		awslambda.StartWithOptions(h.Invoke, awslambda.WithContext(ctx))
		return nil
	}
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
