package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/opensearch-project/opensearch-go/v4"
)

// S3API is the subset of the S3 client the pipeline calls.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// S3Store streams objects with GetObject.
type S3Store struct{ Client S3API }

// Get opens the object; its body is read as it is consumed, never held
// whole.
func (s S3Store) Get(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *s3types.NoSuchKey
		var api smithy.APIError
		if errors.As(err, &nsk) || (errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NoSuchBucket")) {
			return nil, fmt.Errorf("s3://%s/%s: %w (%v)", bucket, key, ErrNoObject, err)
		}
		return nil, err
	}
	return out.Body, nil
}

// OpenSearch sends bulks through an opensearch-go client (with a SigV4
// signer for Amazon OpenSearch Service when configured), with the
// client's own retries off: the pipeline retries failed items only.
type OpenSearch struct{ Client *opensearch.Client }

type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int `json:"status"`
		Error  *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	} `json:"items"`
}

// Bulk posts one body to /_bulk.
func (o OpenSearch) Bulk(ctx context.Context, body []byte) ([]ItemResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/_bulk", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := o.Client.Perform(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &RetryableError{fmt.Errorf("sending a bulk of %d bytes: %w", len(body), err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		err := fmt.Errorf("the store answered the bulk with %s: %s", resp.Status, bytes.TrimSpace(msg))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return nil, &RetryableError{err}
		}
		return nil, err
	}
	var br bulkResponse
	if err := json.NewDecoder(resp.Body).Decode(&br); err != nil {
		return nil, &RetryableError{fmt.Errorf("reading the bulk answer: %w", err)}
	}
	out := make([]ItemResult, len(br.Items))
	for i, it := range br.Items {
		for _, r := range it {
			out[i].Status = r.Status
			if r.Error != nil {
				out[i].Type, out[i].Reason = r.Error.Type, r.Error.Reason
			}
		}
	}
	return out, nil
}

// PutTemplate installs the index template of prefix's daily indices. It
// is safe to repeat.
func (o OpenSearch) PutTemplate(ctx context.Context, prefix string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "/_index_template/"+prefix, bytes.NewReader(Template(prefix)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.Client.Perform(req)
	if err != nil {
		return fmt.Errorf("installing the index template %s: %w", prefix, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("installing the index template %s: %s: %s", prefix, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Count returns how many documents the indices of pattern hold.
func (o OpenSearch) Count(ctx context.Context, pattern string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/"+pattern+"/_count", nil)
	if err != nil {
		return 0, err
	}
	resp, err := o.Client.Perform(req)
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", pattern, err)
	}
	defer resp.Body.Close()
	var c struct {
		Count int64 `json:"count"`
	}
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return 0, fmt.Errorf("counting %s: %s: %s", pattern, resp.Status, bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return 0, fmt.Errorf("counting %s: %w", pattern, err)
	}
	return c.Count, nil
}

// SQSAPI is the subset of the SQS client the pipeline calls.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

// SQSDeadLetters sends dead letters to a queue, one JSON message each.
type SQSDeadLetters struct {
	Client   SQSAPI
	QueueURL string
}

// Send sends in batches of ten; any entry SQS refuses fails the call.
func (d SQSDeadLetters) Send(ctx context.Context, letters []DeadLetter) error {
	for i := 0; i < len(letters); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, l := range letters[i:min(i+10, len(letters))] {
			body, _ := json.Marshal(l)
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(string(body))})
		}
		out, err := d.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(d.QueueURL), Entries: entries})
		if err != nil {
			return fmt.Errorf("sending dead letters to %s: %w", d.QueueURL, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("sending dead letters to %s: %d refused (%s: %s)", d.QueueURL, len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// FileDeadLetters appends dead letters to a file, one JSON line each,
// synced before Send returns.
type FileDeadLetters struct {
	Path string
	mu   sync.Mutex
}

// Send appends the letters.
func (d *FileDeadLetters) Send(_ context.Context, letters []DeadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(d.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the dead-letter file: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, l := range letters {
		_ = enc.Encode(l)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("writing the dead-letter file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing the dead-letter file: %w", err)
	}
	return f.Close()
}
