package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/localcloud/faults"
)

// ScenarioLogs is the access-log scenario: the demo's load balancer logs
// every request to a bucket, `handover logs run` indexes the logs, is
// SIGKILLed in the middle of a file and started again while SQS delivers
// every notification twice, and the store ends with one document per
// request the load generator sent.
const ScenarioLogs = "logs"

const (
	logBucket = "kvstore-elb-logs"
	logQueue  = "kvstore-elb-logs"
	logDLQ    = "kvstore-elb-logs-dead"
	// logFlushInterval is how often the demo's load balancer writes its
	// access logs (ALB: every 5 minutes).
	logFlushInterval = 2 * time.Second
	// logVisibility is the log queue's visibility timeout: short, so the
	// message the killed pipeline held comes back within the scenario.
	logVisibility = 4 * time.Second
	// bulkSlowdown is added to every bulk while the first pipeline runs,
	// so that a log file takes long enough to be killed in the middle of.
	bulkSlowdown = 100 * time.Millisecond
)

// LogsResult is the logs scenario's outcome, as `--output json` prints it.
type LogsResult struct {
	Scenario string   `json:"scenario"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// Requests the load balancer answered the load generator (reads,
	// writes and read-backs, retries included); Unanswered got no
	// response.
	Requests   int64 `json:"requests"`
	Unanswered int64 `json:"unanswered"`
	// LogObjects the load balancer wrote to the bucket (its test file
	// aside).
	LogObjects int `json:"log_objects"`
	// Documents in the pipeline's indices, and of those the ones of the
	// load generator's requests (found by the number in their user agent).
	Documents    int64 `json:"documents"`
	LoadRequests int64 `json:"load_documents"`
	// MostOfOne is the most documents any one request has (1 when none is
	// indexed twice).
	MostOfOne int64 `json:"most_documents_of_one_request"`
	// KilledAfter is how many documents were indexed when the first
	// pipeline was SIGKILLed; KilledMidFile that an object it had started
	// was not finished (its lines partly indexed).
	KilledAfter   int64 `json:"killed_after_documents"`
	KilledMidFile bool  `json:"killed_mid_file"`
	// Redelivered is how many notifications were sent to the queue again;
	// AlreadyIndexed how many lines the second pipeline found already
	// indexed (409s: the killed run's and the redeliveries').
	Redelivered    int   `json:"redelivered_notifications"`
	AlreadyIndexed int64 `json:"already_indexed"`
	DeadLetters    int   `json:"dead_letters"`
	ReadsOK        int64 `json:"reads_ok"`
	ReadsFailed    int64 `json:"reads_failed"`
	FreshReadsOK   int64 `json:"fresh_reads_ok"`
	StaleReads     int64 `json:"stale_reads"`
	WritesAcked    int   `json:"writes_acked"`
	DurationMS     int64 `json:"duration_ms"`
}

// RunLogs runs the logs scenario on the demo's load balancer (CreateGroup
// first), with traffic on keys preloaded keys.
func (e *Env) RunLogs(ctx context.Context, keys int, progress func(string)) (LogsResult, error) {
	res := LogsResult{Scenario: ScenarioLogs}
	started := time.Now()

	progress("creating bucket " + logBucket + ", notifying queue " + logQueue + " (dead letters: " + logDLQ + ")")
	queueURL, dlqURL, err := e.createLogDestination(ctx)
	if err != nil {
		return res, err
	}
	progress(fmt.Sprintf("turning on the load balancer's access logs (written every %s)", logFlushInterval))
	if err := e.enableAccessLogs(ctx); err != nil {
		return res, err
	}

	// Slow bulks, so the first pipeline is killed inside a file.
	slow, err := e.cloud.Faults.Add(faults.Rule{Service: "es", Action: "Bulk", Kind: faults.Latency, Delay: bulkSlowdown})
	if err != nil {
		return res, fmt.Errorf("slowing the store's bulks: %w", err)
	}
	defer e.cloud.Faults.Remove(slow.ID)
	progress(fmt.Sprintf("starting handover logs run (each bulk slowed by %s)", bulkSlowdown))
	first, err := e.startPipeline(ctx, 1, queueURL, dlqURL)
	if err != nil {
		return res, err
	}
	defer first.kill()

	progress("sending traffic through the load balancer")
	traffic := e.StartTraffic(keys)
	drained := false
	defer func() {
		if !drained {
			traffic.Stop()
		}
	}()

	progress("waiting for the pipeline to be in the middle of a log file")
	if _, err := e.waitFor(ctx, time.Minute, "the pipeline to index part of a log file", func() (string, bool, error) {
		if err := first.exited(); err != nil {
			return "", false, err
		}
		n, err := e.countDocs(ctx, nil)
		if err != nil {
			return "", false, err
		}
		return "", n > first.doneLines(), nil
	}); err != nil {
		return res, err
	}
	first.kill()
	// What the killed run had indexed, against the objects it finished.
	if res.KilledAfter, err = e.countDocs(ctx, nil); err != nil {
		return res, err
	}
	res.KilledMidFile = res.KilledAfter > first.doneLines()
	progress(fmt.Sprintf("SIGKILLed handover logs run after %d documents (mid-file: %v)", res.KilledAfter, res.KilledMidFile))
	e.cloud.Faults.Remove(slow.ID)

	sleep(ctx, logFlushInterval) // more logs arrive while it is down
	progress("sending every notification again, as SQS may deliver a message twice")
	if res.Redelivered, err = e.renotify(ctx, queueURL); err != nil {
		return res, err
	}
	progress("starting handover logs run again")
	second, err := e.startPipeline(ctx, 2, queueURL, dlqURL)
	if err != nil {
		return res, err
	}
	defer second.kill()
	sleep(ctx, 2*logFlushInterval)

	progress("stopping the traffic once its requests in flight are answered")
	traffic.Drain()
	drained = true
	tr := traffic.Result()
	res.Requests, res.Unanswered = tr.Requests, tr.Unanswered
	res.ReadsOK, res.ReadsFailed, res.FreshReadsOK, res.StaleReads, res.WritesAcked = tr.ReadsOK, tr.ReadsFailed, tr.FreshReads, tr.StaleReads, tr.WritesAcked

	progress(fmt.Sprintf("waiting for all %d requests to be indexed", res.Requests))
	// Done when the store holds a document per request, nothing is left
	// in the queue, and one more flush brought nothing new.
	_, waitErr := e.waitFor(ctx, time.Minute, "every request indexed and the log queue empty", func() (string, bool, error) {
		if err := second.exited(); err != nil {
			return "", false, err
		}
		n, err := e.countDocs(ctx, nil)
		if err != nil {
			return "", false, err
		}
		depth, err := e.queueDepth(ctx, queueURL)
		if err != nil {
			return "", false, err
		}
		if n < res.Requests || depth > 0 {
			return "", false, nil
		}
		sleep(ctx, logFlushInterval+time.Second)
		again, err := e.countDocs(ctx, nil)
		depth, err2 := e.queueDepth(ctx, queueURL)
		return "", err == nil && err2 == nil && again == n && depth == 0, errors.Join(err, err2)
	})
	if waitErr != nil {
		res.Problems = append(res.Problems, waitErr.Error())
	}

	progress("counting the documents of each request")
	if res.Documents, err = e.countDocs(ctx, nil); err != nil {
		return res, err
	}
	if res.LoadRequests, err = e.countDocs(ctx, map[string]any{"prefix": map[string]any{"user_agent": loadAgent}}); err != nil {
		return res, err
	}
	if res.MostOfOne, err = e.mostOfOneAgent(ctx); err != nil {
		return res, err
	}
	if res.LogObjects, err = e.countLogObjects(ctx); err != nil {
		return res, err
	}
	if res.DeadLetters, err = e.queueDepth(ctx, dlqURL); err != nil {
		return res, err
	}
	if v, err := second.metric("handover_logs_duplicates_total"); err == nil {
		res.AlreadyIndexed = int64(v)
	} else {
		res.Problems = append(res.Problems, err.Error())
	}
	second.stop()
	res.DurationMS = time.Since(started).Milliseconds()

	if res.Unanswered > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d requests got no answer: the load balancer may or may not have logged them", res.Unanswered))
	}
	if res.Documents != res.Requests {
		res.Problems = append(res.Problems, fmt.Sprintf("%d documents for %d requests sent through the load balancer", res.Documents, res.Requests))
	}
	if res.LoadRequests != res.Documents {
		res.Problems = append(res.Problems, fmt.Sprintf("%d of the %d documents are the load generator's requests", res.LoadRequests, res.Documents))
	}
	if res.MostOfOne > 1 {
		res.Problems = append(res.Problems, fmt.Sprintf("a request was indexed %d times", res.MostOfOne))
	}
	if !res.KilledMidFile {
		res.Problems = append(res.Problems, "the pipeline was not killed in the middle of a file (it finished every file it had started)")
	}
	if res.AlreadyIndexed == 0 {
		res.Problems = append(res.Problems, "the second pipeline found nothing already indexed: the kill and the redeliveries were not exercised")
	}
	if res.DeadLetters > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d dead letters in %s", res.DeadLetters, logDLQ))
	}
	if res.ReadsFailed > 0 || res.StaleReads > 0 || res.FreshReadsOK == 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("traffic: %d reads failed (%d stale), %d own writes read back", res.ReadsFailed, res.StaleReads, res.FreshReadsOK))
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}

// createLogDestination makes the log bucket, its queue with a dead-letter
// queue, and the bucket's ObjectCreated notification to the queue, as a
// user would (or `handover deploy template --logs` does on AWS).
func (e *Env) createLogDestination(ctx context.Context) (queueURL, dlqURL string, err error) {
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(logBucket)}); err != nil {
		return "", "", fmt.Errorf("creating the log bucket: %w", err)
	}
	dlq, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(logDLQ)})
	if err != nil {
		return "", "", fmt.Errorf("creating the log dead-letter queue: %w", err)
	}
	dlqARN, err := e.queueARN(ctx, aws.ToString(dlq.QueueUrl))
	if err != nil {
		return "", "", err
	}
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": "5"})
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(logQueue), Attributes: map[string]string{
		"RedrivePolicy": string(redrive), "VisibilityTimeout": strconv.Itoa(int(logVisibility / time.Second))}})
	if err != nil {
		return "", "", fmt.Errorf("creating the log queue: %w", err)
	}
	qARN, err := e.queueARN(ctx, aws.ToString(q.QueueUrl))
	if err != nil {
		return "", "", err
	}
	if _, err := e.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(logBucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(qARN), Events: []s3types.Event{s3types.EventS3ObjectCreated}}}}}); err != nil {
		return "", "", fmt.Errorf("pointing the log bucket's notifications at the queue: %w", err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}

func (e *Env) queueARN(ctx context.Context, url string) (string, error) {
	out, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("reading the ARN of %s: %w", url, err)
	}
	return out.Attributes["QueueArn"], nil
}

// queueDepth is how many messages a queue holds, visible or in flight.
func (e *Env) queueDepth(ctx context.Context, url string) (int, error) {
	out, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, fmt.Errorf("reading the depth of %s: %w", url, err)
	}
	a, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	b, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return a + b, nil
}

func (e *Env) enableAccessLogs(ctx context.Context) error {
	lbs, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{groupName}})
	if err != nil || len(lbs.LoadBalancers) == 0 {
		return fmt.Errorf("finding the load balancer: %w", errors.Join(err, errors.New("not found")))
	}
	if _, err := e.ELB.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{
		LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn,
		Attributes: []elbtypes.LoadBalancerAttribute{
			{Key: aws.String("access_logs.s3.enabled"), Value: aws.String("true")},
			{Key: aws.String("access_logs.s3.bucket"), Value: aws.String(logBucket)},
		}}); err != nil {
		return fmt.Errorf("turning on access logs: %w", err)
	}
	return nil
}

// renotify sends the queue an S3 notification for every object in the log
// bucket again: the duplicates SQS's at-least-once delivery may bring.
func (e *Env) renotify(ctx context.Context, queueURL string) (int, error) {
	keys, err := e.logKeys(ctx)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		body, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventName": "ObjectCreated:Put",
			"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
			"s3":        map[string]any{"bucket": map[string]any{"name": logBucket, "arn": "arn:aws:s3:::" + logBucket}, "object": map[string]any{"key": k}},
		}}})
		if _, err := e.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(string(body))}); err != nil {
			return 0, fmt.Errorf("sending the notification of %s again: %w", k, err)
		}
	}
	return len(keys), nil
}

func (e *Env) logKeys(ctx context.Context) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: aws.String(logBucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the log bucket: %w", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// countLogObjects counts the access-log files, ELB's test file aside.
func (e *Env) countLogObjects(ctx context.Context) (int, error) {
	keys, err := e.logKeys(ctx)
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, ".log.gz") {
			n++
		}
	}
	return n, err
}

// search posts a query to the local cloud's OpenSearch endpoint.
func (e *Env) search(ctx context.Context, path string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Endpoint+"/_opensearch/elb-logs-*/"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking the store (%s): %w", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking the store (%s): %s: %s", path, resp.Status, raw)
	}
	return json.Unmarshal(raw, out)
}

// countDocs counts the documents in the pipeline's indices matching query
// (nil: all). No index yet is 0.
func (e *Env) countDocs(ctx context.Context, query map[string]any) (int64, error) {
	body := map[string]any{}
	if query != nil {
		body["query"] = query
	}
	var out struct {
		Count int64 `json:"count"`
	}
	err := e.search(ctx, "_count", body, &out)
	return out.Count, err
}

// mostOfOneAgent is the most documents one user agent has: every request
// of the load generator has its own, so more than 1 is a request indexed
// twice.
func (e *Env) mostOfOneAgent(ctx context.Context) (int64, error) {
	var out struct {
		Aggregations struct {
			Agents struct {
				Buckets []struct {
					DocCount int64 `json:"doc_count"`
				} `json:"buckets"`
			} `json:"agents"`
		} `json:"aggregations"`
	}
	if err := e.search(ctx, "_search", map[string]any{"size": 0,
		"aggs": map[string]any{"agents": map[string]any{"terms": map[string]any{"field": "user_agent", "size": 1}}}}, &out); err != nil {
		return 0, err
	}
	if b := out.Aggregations.Agents.Buckets; len(b) > 0 {
		return b[0].DocCount, nil
	}
	return 0, nil
}

// pipeline is a `handover logs run` child process.
type pipeline struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logPath string
	metrics string
}

// startPipeline starts `handover logs run` number n against the local
// cloud's queue and OpenSearch endpoint, and waits for its metrics.
func (e *Env) startPipeline(ctx context.Context, n int, queueURL, dlqURL string) (*pipeline, error) {
	// On the address the controller watches (one pipeline runs at a time).
	addr := e.logsMetricsAddr
	logPath := filepath.Join(e.opts.DataDir, fmt.Sprintf("logs-run-%d.log", n))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the pipeline's log: %w", err)
	}
	// Small bulks, so a file of a few seconds of traffic takes several.
	cmd := exec.Command(e.opts.HandoverBin, "logs", "run", "--endpoint-url", e.Endpoint, "--queue-url", queueURL, "--dlq-url", dlqURL,
		"--endpoint", e.Endpoint+"/_opensearch", "--bulk-bytes", "16384", "--metrics-addr", addr, "--log-level", "info")
	cmd.Env = e.awsEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting handover logs run: %w", err)
	}
	p := &pipeline{cmd: cmd, done: make(chan struct{}), logPath: logPath, metrics: "http://" + addr + "/metrics"}
	go func() { p.waitErr = cmd.Wait(); logf.Close(); close(p.done) }()
	_, err = e.waitFor(ctx, 30*time.Second, "handover logs run's metrics", func() (string, bool, error) {
		if err := p.exited(); err != nil {
			return "", false, err
		}
		_, err := p.metric("handover_logs_lines_total")
		return "", err == nil, err
	})
	if err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// exited says, once the process is gone, how and where its log is.
func (p *pipeline) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("handover logs run exited (%v); read its log: %s", p.waitErr, p.logPath)
	default:
		return nil
	}
}

func (p *pipeline) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *pipeline) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

var doneLine = regexp.MustCompile(`msg="log object done" .* lines=(\d+) `)

// doneLines adds up the lines of the objects the pipeline's log says it
// finished: more documents than that means it is inside a file.
func (p *pipeline) doneLines() int64 {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := doneLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			n += v
		}
	}
	return n
}

// metric reads one unlabelled sample from the pipeline's /metrics.
func (p *pipeline) metric(name string) (float64, error) {
	resp, err := http.Get(p.metrics)
	if err != nil {
		return 0, fmt.Errorf("reading the pipeline's metrics: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", name, p.metrics)
}
