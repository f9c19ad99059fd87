package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/signer/awsv2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/handover-dev/handover/internal/logs"
)

type logsFlags struct {
	endpoint, endpointURL, region string
	dlqURL, dlqFile               string
	indexPrefix                   string
	bulkBytes                     int
	parseWorkers                  int
	connectionLogs, sigv4         bool
	// flags tells whether --parse-workers was given, so that its
	// environment variable applies only when it was not.
	flags    *pflag.FlagSet
	logLevel string
	// metrics, when set, observes the pipeline; else observer does.
	metrics  *logs.Metrics
	observer logs.Observer
}

func (f *logsFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.endpointURL, "endpoint-url", os.Getenv("HANDOVER_ENDPOINT_URL"), "AWS endpoint for S3 and SQS (the local cloud; env HANDOVER_ENDPOINT_URL)")
	fl.StringVar(&f.region, "region", os.Getenv("AWS_REGION"), "AWS region (env AWS_REGION)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn, error or off")
	f.registerPipeline(cmd)
}

// registerPipeline adds the flags of the pipeline proper, which `handover
// lambda --mode logs` shares; the AWS ones it has already.
func (f *logsFlags) registerPipeline(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", os.Getenv("HANDOVER_LOGS_ENDPOINT"), "the OpenSearch endpoint, e.g. https://search-logs-abc.us-east-1.es.amazonaws.com or http://127.0.0.1:4566/_opensearch (env HANDOVER_LOGS_ENDPOINT)")
	fl.StringVar(&f.dlqURL, "dlq-url", os.Getenv("HANDOVER_LOGS_DLQ_URL"), "SQS queue for lines and objects that cannot be indexed (env HANDOVER_LOGS_DLQ_URL)")
	fl.StringVar(&f.dlqFile, "dlq-file", "", "or a file to append them to, one JSON line each")
	fl.StringVar(&f.indexPrefix, "index-prefix", envOr("HANDOVER_LOGS_INDEX_PREFIX", "elb-logs"), "daily indices are PREFIX-YYYY.MM.DD (env HANDOVER_LOGS_INDEX_PREFIX)")
	fl.IntVar(&f.bulkBytes, "bulk-bytes", 5<<20, "largest bulk request body")
	fl.IntVar(&f.parseWorkers, "parse-workers", 0, "goroutines parsing and encoding the lines of one object; 1 parses on the object's own goroutine, 0 means GOMAXPROCS, at most 4 (env HANDOVER_LOGS_PARSE_WORKERS)")
	f.flags = fl
	fl.BoolVar(&f.connectionLogs, "connection-logs", os.Getenv("HANDOVER_LOGS_CONNECTION_LOGS") == "true", "index ALB connection logs (conn_log.) into PREFIX-connections-YYYY.MM.DD instead of skipping them (env HANDOVER_LOGS_CONNECTION_LOGS=true)")
	fl.BoolVar(&f.sigv4, "sigv4", os.Getenv("HANDOVER_LOGS_SIGV4") == "true", "sign requests to the endpoint with SigV4 (service es), as Amazon OpenSearch Service domains with IAM access need (env HANDOVER_LOGS_SIGV4=true)")
}

// pipeline builds the pipeline and its clients from the flags.
func (f *logsFlags) pipeline(ctx context.Context, stderr io.Writer) (*logs.Pipeline, logs.OpenSearch, aws.Config, error) {
	fail := func(err error) (*logs.Pipeline, logs.OpenSearch, aws.Config, error) {
		return nil, logs.OpenSearch{}, aws.Config{}, &exitError{code: 2, err: err}
	}
	if f.endpoint == "" {
		return fail(errors.New("--endpoint is required: the OpenSearch endpoint to index into (for the local cloud: http://127.0.0.1:4566/_opensearch)"))
	}
	if u, err := url.Parse(f.endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(fmt.Errorf("--endpoint %q is not an http(s) URL", f.endpoint))
	}
	if (f.dlqURL == "") == (f.dlqFile == "") {
		return fail(errors.New("give one of --dlq-url (an SQS queue) or --dlq-file: lines that cannot be indexed must go somewhere"))
	}
	if v := os.Getenv("HANDOVER_LOGS_PARSE_WORKERS"); v != "" && (f.flags == nil || !f.flags.Changed("parse-workers")) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail(fmt.Errorf("HANDOVER_LOGS_PARSE_WORKERS=%q is not a number: give 1 or more, or 0 for the default", v))
		}
		f.parseWorkers = n
	}
	if f.parseWorkers < 0 {
		return fail(fmt.Errorf("--parse-workers %d: give 1 or more goroutines, or 0 for the default (GOMAXPROCS, at most 4)", f.parseWorkers))
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return fail(err)
	}
	cfg, err := awsConfig(ctx, f.endpointURL, f.region, log)
	if err != nil {
		return fail(err)
	}
	osc := opensearch.Config{Addresses: []string{f.endpoint}, DisableRetry: true}
	if f.sigv4 {
		if osc.Signer, err = awsv2.NewSignerWithService(cfg, "es"); err != nil {
			return fail(fmt.Errorf("--sigv4: %w", err))
		}
	}
	client, err := opensearch.NewClient(osc)
	if err != nil {
		return fail(fmt.Errorf("--endpoint %q: %w", f.endpoint, err))
	}
	store := logs.OpenSearch{Client: client}
	if err := store.PutTemplate(ctx, f.indexPrefix); err != nil {
		return nil, store, cfg, fmt.Errorf("%w (is the endpoint right and reachable?)", err)
	}
	var dead logs.DeadLetters = &logs.FileDeadLetters{Path: f.dlqFile}
	if f.dlqURL != "" {
		dead = logs.SQSDeadLetters{Client: sqs.NewFromConfig(cfg), QueueURL: f.dlqURL}
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = f.endpointURL != "" })
	pcfg := logs.Config{IndexPrefix: f.indexPrefix, BulkBytes: f.bulkBytes, ParseWorkers: f.parseWorkers, ConnectionLogs: f.connectionLogs, Logger: log}
	if f.metrics != nil {
		pcfg.Observer = f.metrics
	} else if f.observer != nil {
		pcfg.Observer = f.observer
	}
	p := logs.New(pcfg, logs.S3Store{Client: s3c}, store, dead)
	if f.metrics != nil {
		f.metrics.Register(p)
	}
	return p, store, cfg, nil
}

func newLogs(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Index ELB access logs (Classic, ALB, NLB) from S3 into OpenSearch, each line exactly once",
		Long: `logs is the ELB access-log pipeline: S3 ObjectCreated notifications for
load balancer log files → streamed GetObject → every gzip member → a
quote-aware parser per format (unknown trailing fields kept) → bulk create
into daily indices PREFIX-YYYY.MM.DD, with ids hash(bucket ARN + key)-offset
so a redelivered file is never indexed twice. Throttled (429) and failed
(5xx) items alone are resent, with backoff; lines that cannot be parsed or
are refused go to the dead letters with their object, offset and reason.
See docs/logs.md.`,
	}
	cmd.AddCommand(newLogsRun(stdout, stderr), newLogsReplay(stdout, stderr), newLogsStats(stdout, stderr))
	return cmd
}

func newLogsRun(stdout, stderr io.Writer) *cobra.Command {
	var (
		f           logsFlags
		cfg         logs.DaemonConfig
		workers     int
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Consume S3 notifications from an SQS queue and index the log files they name",
		Example: `  # against the local cloud
  handover logs run --endpoint-url http://127.0.0.1:4566 \
    --queue-url http://127.0.0.1:4566/000000000000/elb-logs \
    --dlq-url http://127.0.0.1:4566/000000000000/elb-logs-dead \
    --endpoint http://127.0.0.1:4566/_opensearch

  # on AWS, with an IAM-authenticated domain
  handover logs run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/elb-logs \
    --dlq-url https://sqs.us-east-1.amazonaws.com/123456789012/elb-logs-dead \
    --endpoint https://search-logs-abc.us-east-1.es.amazonaws.com --sigv4

  # with Prometheus metrics on http://127.0.0.1:9108/metrics
  handover logs run --queue-url … --dlq-url … --endpoint … --metrics-addr 127.0.0.1:9108

  # two messages at once, each object parsed by one goroutine (a small instance)
  handover logs run --queue-url … --dlq-url … --endpoint … --workers 2 --parse-workers 1`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.QueueURL == "" {
				return &exitError{code: 2, err: errors.New("--queue-url is required: the SQS queue the log bucket's notifications go to")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var ln net.Listener
			if metricsAddr != "" {
				var err error
				if ln, err = net.Listen("tcp", metricsAddr); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--metrics-addr %s: %w", metricsAddr, err)}
				}
				f.metrics = logs.NewMetrics()
			}
			p, _, awsCfg, err := f.pipeline(ctx, stderr)
			if err != nil {
				if ln != nil {
					ln.Close()
				}
				return err
			}
			if ln != nil {
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", promhttp.HandlerFor(f.metrics.Registry, promhttp.HandlerOpts{}))
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				defer func() {
					shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = srv.Shutdown(shutdown)
				}()
				if log, err := newLogger(stderr, f.logLevel); err == nil {
					log.Info("metrics listening", "addr", "http://"+ln.Addr().String()+"/metrics")
				}
			}
			cfg.Workers = workers
			return p.Run(ctx, sqs.NewFromConfig(awsCfg), cfg)
		},
	}
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", os.Getenv("HANDOVER_LOGS_METRICS_ADDR"), "serve Prometheus metrics at http://ADDR/metrics (lines, lag, retries, dead letters by cause; env HANDOVER_LOGS_METRICS_ADDR)")
	f.register(cmd)
	cmd.Flags().StringVar(&cfg.QueueURL, "queue-url", os.Getenv("HANDOVER_LOGS_QUEUE_URL"), "SQS queue of the bucket's ObjectCreated notifications (env HANDOVER_LOGS_QUEUE_URL)")
	cmd.Flags().IntVar(&workers, "workers", 2, "messages processed at once")
	cmd.Flags().DurationVar(&cfg.Visibility, "visibility", 0, "visibility timeout to keep messages under (default: the queue's)")
	cmd.Flags().BoolVar(&cfg.Once, "once", false, "stop when the queue is empty")
	return cmd
}

func newLogsReplay(stdout, stderr io.Writer) *cobra.Command {
	var (
		f   logsFlags
		out output = "text"
	)
	cmd := &cobra.Command{
		Use:   "replay s3://BUCKET/PREFIX",
		Short: "Index every log object under a prefix (a backfill; safe to repeat)",
		Example: `  handover logs replay s3://my-logs/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2025/08/14/ \
    --endpoint http://127.0.0.1:4566/_opensearch --endpoint-url http://127.0.0.1:4566 --dlq-file dead.jsonl
  handover logs replay s3://my-logs/ --endpoint … --dlq-file dead.jsonl --output json
  # a backfill that leaves the other cores alone
  handover logs replay s3://my-logs/ --endpoint … --dlq-file dead.jsonl --parse-workers 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, prefix, ok := strings.Cut(strings.TrimPrefix(args[0], "s3://"), "/")
			if !strings.HasPrefix(args[0], "s3://") || bucket == "" || !ok && bucket == "" {
				return &exitError{code: 2, err: fmt.Errorf("%q: give the objects as s3://BUCKET/PREFIX", args[0])}
			}
			ctx := cmd.Context()
			p, _, awsCfg, err := f.pipeline(ctx, stderr)
			if err != nil {
				return err
			}
			s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = f.endpointURL != "" })
			type row struct {
				Key string `json:"key"`
				logs.Result
			}
			var rows []row
			var total logs.Result
			pager := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
			for pager.HasMorePages() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
				}
				for _, o := range page.Contents {
					key := aws.ToString(o.Key)
					res, err := p.ProcessObject(ctx, logs.Object{Bucket: bucket, Key: key}, nil)
					if err != nil {
						return fmt.Errorf("replaying s3://%s/%s (run it again: what is indexed stays indexed): %w", bucket, key, err)
					}
					rows = append(rows, row{key, res})
					total.Lines += res.Lines
					total.Indexed += res.Indexed
					total.Duplicates += res.Duplicates
					total.DeadLettered += res.DeadLettered
					total.Retries += res.Retries
					if out == "text" {
						state := fmt.Sprintf("%d lines: %d indexed, %d already indexed, %d dead-lettered", res.Lines, res.Indexed, res.Duplicates, res.DeadLettered)
						if res.Skipped != "" {
							state = "skipped: " + res.Skipped
						}
						fmt.Fprintf(stdout, "%s  %s\n", key, state)
					}
				}
			}
			if out == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"objects": rows, "total": total})
			}
			fmt.Fprintf(stdout, "%d objects, %d lines: %d indexed, %d already indexed, %d dead-lettered, %d retried items\n",
				len(rows), total.Lines, total.Indexed, total.Duplicates, total.DeadLettered, total.Retries)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().Var(&out, "output", "text or json")
	return cmd
}

func newLogsStats(stdout, stderr io.Writer) *cobra.Command {
	var (
		f   logsFlags
		out output = "text"
	)
	cmd := &cobra.Command{
		Use:     "stats",
		Short:   "Show how many log documents the endpoint holds",
		Example: `  handover logs stats --endpoint http://127.0.0.1:4566/_opensearch --output json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.endpoint == "" {
				return &exitError{code: 2, err: errors.New("--endpoint is required")}
			}
			client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{f.endpoint}, DisableRetry: true})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			store := logs.OpenSearch{Client: client}
			n, err := store.Count(cmd.Context(), f.indexPrefix+"-*")
			if err != nil {
				return err
			}
			if out == "json" {
				return json.NewEncoder(stdout).Encode(map[string]any{"index_pattern": f.indexPrefix + "-*", "documents": n})
			}
			fmt.Fprintf(stdout, "%s-*: %d documents\n", f.indexPrefix, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.endpoint, "endpoint", os.Getenv("HANDOVER_LOGS_ENDPOINT"), "the OpenSearch endpoint (env HANDOVER_LOGS_ENDPOINT)")
	cmd.Flags().StringVar(&f.indexPrefix, "index-prefix", "elb-logs", "daily indices are PREFIX-YYYY.MM.DD")
	cmd.Flags().Var(&out, "output", "text or json")
	return cmd
}
