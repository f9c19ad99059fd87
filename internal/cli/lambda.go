package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/lambdahandler"
)

func newLambda(stdout, stderr io.Writer) *cobra.Command {
	var (
		f      controllerFlags
		invoke string
	)
	cmd := &cobra.Command{
		Use:   "lambda",
		Short: "Run the handover controller as an AWS Lambda function behind the events queue",
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
one payload from a file and prints the answer, without Lambda.`,
		Example: `  # in the function (provided.al2023): bootstrap is the handover binary
  ./bootstrap lambda

  # try a payload locally against the local cloud
  handover lambda --invoke sqs-batch.json --endpoint-url http://127.0.0.1:4566 \
    --queue-url http://127.0.0.1:4566/000000000000/handover-events --ledger sqlite:///tmp/ledger.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLambda(cmd.Context(), f, invoke, stdout, stderr)
		},
	}
	registerEngineFlags(cmd, &f)
	cmd.Flags().StringVar(&invoke, "invoke", "", "handle one invocation payload from this file (- for stdin) and print the answer")
	return cmd
}

func runLambda(ctx context.Context, f controllerFlags, invoke string, stdout, stderr io.Writer) error {
	if invoke == "" && os.Getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		return &exitError{code: 2, err: fmt.Errorf("not running inside AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set): pass --invoke FILE to handle one payload, or run `handover controller` to consume the queue from a server")}
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
		if invoke == "-" {
			payload, err = io.ReadAll(os.Stdin)
		} else {
			payload, err = os.ReadFile(invoke)
		}
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("reading the payload: %w", err)}
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
