// Package s3 is the local cloud's S3: johannesboyne/gofakes3 serves the S3
// API itself (we write none of it), and this package adds what gofakes3
// lacks and handover's log pipeline needs — bucket notification
// configurations and ObjectCreated events delivered to SQS queues in S3's
// event shape.
//
// It must never change an S3 answer: it only watches requests that
// succeeded and reacts to them.
package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// QueueSender delivers a message to an SQS queue named by its ARN.
type QueueSender interface {
	SendByARN(ctx context.Context, queueARN, body string) error
}

// Config configures the service.
type Config struct {
	Region    string
	AccountID string
	// DataDir keeps objects (bolt database) and notification configs; ""
	// keeps everything in memory.
	DataDir string
	Queues  QueueSender
	Clock   clock.Clock
	Logger  *slog.Logger
}

// Service serves S3 over HTTP (path-style requests).
type Service struct {
	cfg     Config
	backend gofakes3.Backend
	inner   http.Handler
	closer  io.Closer

	// objMu: object reads share it, writes hold it alone (see ServeHTTP).
	objMu sync.RWMutex

	mu      sync.Mutex
	configs map[string]NotificationConfiguration // bucket → config
	tags    map[string][]Tag                     // bucket → tag set
	uploads map[string]map[string]int64          // multipart upload → part → bytes
	seq     uint64
}

// New opens the service.
func New(cfg Config) (*Service, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, configs: map[string]NotificationConfiguration{}, tags: map[string][]Tag{}}
	if cfg.DataDir == "" {
		s.backend = s3mem.New()
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the S3 data directory: %w", err)
		}
		// gofakes3's bolt backend hands out objects' bytes that alias
		// bolt's memory map after the read transaction ends; a write that
		// grows the file remaps it and faults whoever still reads them (a
		// CopyObject reads its source after writing the copy). A map
		// bigger than the store ever grows is never remapped.
		db, err := bolt.Open(filepath.Join(cfg.DataDir, "objects.bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second, InitialMmapSize: boltMmapBytes})
		if err != nil {
			return nil, fmt.Errorf("opening the S3 object store (is another local cloud using %s?): %w", cfg.DataDir, err)
		}
		s.backend, s.closer = s3bolt.New(db), db
		if err := s.load(); err != nil {
			return nil, err
		}
		if err := s.loadTags(); err != nil {
			return nil, err
		}
	}
	s.inner = gofakes3.New(s.backend, gofakes3.WithAutoBucket(false)).Server()
	return s, nil
}

// boltMmapBytes is the object store's memory map (address space, not
// memory: only the pages read are resident).
const boltMmapBytes = 16 << 30

// MaxObjectBytes is the largest object the local cloud's S3 stores: bbolt
// holds each object as one value, and cannot hold one of 256 MiB (it
// panics). AWS takes 5 GiB in one PUT and 5 TiB by multipart; a bigger
// object here is refused with AWS's EntityTooLarge, saying why.
const MaxObjectBytes = 255 << 20

// admitSize refuses a PUT (an object, or a part that brings its upload past
// the limit) bigger than MaxObjectBytes, and forgets an upload once it is
// completed or aborted. It returns the refusal's message, or "".
func (s *Service) admitSize(r *http.Request) string {
	q := r.URL.Query()
	upload := q.Get("uploadId")
	if upload != "" && (r.Method == http.MethodPost || r.Method == http.MethodDelete) {
		s.mu.Lock()
		delete(s.uploads, upload)
		s.mu.Unlock()
		return ""
	}
	if r.Method != http.MethodPut || r.ContentLength <= 0 || q.Has("tagging") || q.Has("acl") {
		return ""
	}
	size := r.ContentLength
	if upload != "" && q.Has("partNumber") {
		s.mu.Lock()
		if s.uploads == nil {
			s.uploads = map[string]map[string]int64{}
		}
		parts := s.uploads[upload]
		if parts == nil {
			parts = map[string]int64{}
			s.uploads[upload] = parts
		}
		parts[q.Get("partNumber")] = r.ContentLength // a part sent again replaces itself
		size = 0
		for _, n := range parts {
			size += n
		}
		if size > MaxObjectBytes {
			delete(parts, q.Get("partNumber"))
		}
		s.mu.Unlock()
	}
	if size <= MaxObjectBytes {
		return ""
	}
	return fmt.Sprintf("Your proposed upload exceeds the maximum allowed size: %d bytes; the local cloud's S3 stores objects of at most %d bytes (255 MiB) — split the data into several objects", size, MaxObjectBytes)
}

// Close releases the object store.
func (s *Service) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// PutObject stores an object in-process (for the load balancers' access
// logs), emitting notifications as an HTTP PUT would.
func (s *Service) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	if _, err := s.backend.PutObject(bucket, key, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		return fmt.Errorf("putting s3://%s/%s: %w", bucket, key, err)
	}
	s.notify(ctx, bucket, key, "ObjectCreated:Put", int64(len(body)))
	return nil
}

// NotificationConfiguration is S3's bucket notification document; only
// queue configurations are honoured.
type NotificationConfiguration struct {
	XMLName xml.Name             `xml:"NotificationConfiguration" json:"-"`
	Xmlns   string               `xml:"xmlns,attr,omitempty" json:"-"`
	Queues  []QueueConfiguration `xml:"QueueConfiguration"`
}

// QueueConfiguration sends matching events to an SQS queue.
type QueueConfiguration struct {
	ID     string       `xml:"Id,omitempty"`
	Queue  string       `xml:"Queue"`
	Events []string     `xml:"Event"`
	Rules  []FilterRule `xml:"Filter>S3Key>FilterRule"`
}

// FilterRule is a prefix or suffix rule on the object key.
type FilterRule struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// matches reports whether an event of name (e.g. "ObjectCreated:Put") on
// key is wanted by qc.
func (qc QueueConfiguration) matches(name, key string) bool {
	want := false
	for _, e := range qc.Events {
		e = strings.TrimPrefix(e, "s3:")
		if e == name || (strings.HasSuffix(e, ":*") && strings.HasPrefix(name, strings.TrimSuffix(e, "*"))) {
			want = true
		}
	}
	for _, r := range qc.Rules {
		switch strings.ToLower(r.Name) {
		case "prefix":
			want = want && strings.HasPrefix(key, r.Value)
		case "suffix":
			want = want && strings.HasSuffix(key, r.Value)
		}
	}
	return want
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key := splitPath(r.URL.Path)
	if _, ok := r.URL.Query()["notification"]; ok && bucket != "" && key == "" {
		s.serveNotification(w, r, bucket)
		return
	}
	if _, ok := r.URL.Query()["tagging"]; ok && bucket != "" && key == "" {
		s.serveTagging(w, r, bucket)
		return
	}
	if _, ok := r.URL.Query()["versions"]; ok && r.Method == http.MethodGet && bucket != "" && key == "" {
		if _, versioned := s.backend.(gofakes3.VersionedBackend); !versioned {
			s.serveVersions(w, r, bucket)
			return
		}
	}
	if r.Method == http.MethodPut && bucket != "" && key == "" && len(r.URL.Query()) == 0 {
		// The local cloud is one account, so a bucket that exists is the
		// caller's: S3 answers BucketAlreadyOwnedByYou (gofakes3 would
		// say BucketAlreadyExists, another account's).
		if ok, err := s.backend.BucketExists(bucket); err == nil && ok {
			writeS3Error(w, http.StatusConflict, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.", bucket)
			return
		}
	}
	if msg := s.admitSize(r); msg != "" {
		writeS3Error(w, http.StatusBadRequest, "EntityTooLarge", msg, r.URL.Path)
		return
	}
	// Object reads hold bytes that alias bolt's pages after their read
	// transaction (see New); no write may free or move those pages while
	// a read still sends them.
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.objMu.RLock()
		defer s.objMu.RUnlock()
	} else {
		s.objMu.Lock()
		defer s.objMu.Unlock()
	}
	if !s.checkIfMatch(w, r, bucket, key) {
		return
	}
	cleanup, ok := s.prepareChecksum(w, r, key)
	defer cleanup()
	if !ok {
		return
	}
	cw := &checksumWriter{ResponseWriter: w, r: r}
	if isObjectPut(r, key) && r.Header.Get("X-Amz-Copy-Source") != "" && r.Header.Get(hdrChecksumAlgo) != "" {
		cw.copySum = r.Header.Get(hdrChecksumSHA256)
	}
	rec := &statusRecorder{ResponseWriter: cw, status: http.StatusOK}
	s.inner.ServeHTTP(rec, r)
	cw.finish()
	if r.Method == http.MethodDelete && bucket != "" && key == "" && rec.status == http.StatusNoContent {
		// A bucket made again under the same name starts without tags.
		if err := s.dropTags(bucket); err != nil {
			s.cfg.Logger.Warn("forgetting a deleted bucket's tags", "bucket", bucket, "err", err)
		}
		return
	}
	if rec.status != http.StatusOK || bucket == "" || key == "" {
		return
	}
	var event string
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && r.Header.Get("x-amz-copy-source") != "" && !q.Has("partNumber"):
		event = "ObjectCreated:Copy"
	case r.Method == http.MethodPut && !q.Has("partNumber") && !q.Has("tagging") && !q.Has("acl"):
		event = "ObjectCreated:Put"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		event = "ObjectCreated:CompleteMultipartUpload"
	default:
		return
	}
	size := int64(-1)
	if obj, err := s.backend.HeadObject(bucket, key); err == nil {
		size = obj.Size
		obj.Contents.Close()
	}
	s.notify(r.Context(), bucket, key, event, size)
}

func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *Service) serveNotification(w http.ResponseWriter, r *http.Request, bucket string) {
	if ok, err := s.backend.BucketExists(bucket); err != nil || !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", bucket)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		nc := s.configs[bucket]
		s.mu.Unlock()
		nc.Xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"
		w.Header().Set("Content-Type", "application/xml")
		_, _ = io.WriteString(w, xml.Header)
		_ = xml.NewEncoder(w).Encode(nc)
	case http.MethodPut:
		var nc NotificationConfiguration
		if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&nc); err != nil {
			writeS3Error(w, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema: "+err.Error(), bucket)
			return
		}
		for _, q := range nc.Queues {
			if !strings.HasPrefix(q.Queue, "arn:aws:sqs:") || len(q.Events) == 0 {
				writeS3Error(w, http.StatusBadRequest, "InvalidArgument", fmt.Sprintf("Unable to validate the following destination configurations: queue %q needs an SQS ARN and at least one event", q.Queue), bucket)
				return
			}
		}
		s.mu.Lock()
		s.configs[bucket] = nc
		err := s.saveLocked()
		s.mu.Unlock()
		if err != nil {
			writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error(), bucket)
			return
		}
		// S3 sends a test event to each destination when it is configured.
		for _, q := range nc.Queues {
			if s.cfg.Queues != nil {
				body, _ := json.Marshal(map[string]string{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": s.cfg.Clock.Now().UTC().Format(time.RFC3339Nano), "Bucket": bucket, "RequestId": requestID()})
				if err := s.cfg.Queues.SendByARN(r.Context(), q.Queue, string(body)); err != nil {
					writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "Unable to validate the following destination configurations: "+err.Error(), bucket)
					return
				}
			}
		}
		w.WriteHeader(http.StatusOK)
	default:
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.", bucket)
	}
}

func writeS3Error(w http.ResponseWriter, status int, code, msg, resource string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		Resource  string   `xml:"Resource"`
		RequestID string   `xml:"RequestId"`
	}{Code: code, Message: msg, Resource: resource, RequestID: requestID()})
}

// notify sends an S3 event record to every queue configured for it.
func (s *Service) notify(ctx context.Context, bucket, key, name string, size int64) {
	if s.cfg.Queues == nil {
		return
	}
	s.mu.Lock()
	nc := s.configs[bucket]
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	for _, q := range nc.Queues {
		if !q.matches(name, key) {
			continue
		}
		body, err := json.Marshal(Event{Records: []Record{s.record(bucket, key, name, size, q.ID, seq)}})
		if err != nil {
			continue
		}
		if err := s.cfg.Queues.SendByARN(ctx, q.Queue, string(body)); err != nil {
			s.cfg.Logger.Warn("s3 notification not delivered", "bucket", bucket, "key", key, "queue", q.Queue, "err", err)
		}
	}
}

// Event is S3's event notification message.
type Event struct {
	Records []Record `json:"Records"`
}

// Record is one S3 event record, in S3's event message structure
// (eventVersion 2.1).
type Record struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      map[string]string `json:"userIdentity"`
	RequestParameters map[string]string `json:"requestParameters"`
	ResponseElements  map[string]string `json:"responseElements"`
	S3                RecordS3          `json:"s3"`
}

// RecordS3 is the s3 part of a record.
type RecordS3 struct {
	SchemaVersion   string       `json:"s3SchemaVersion"`
	ConfigurationID string       `json:"configurationId"`
	Bucket          RecordBucket `json:"bucket"`
	Object          RecordObject `json:"object"`
}

// RecordBucket names the bucket.
type RecordBucket struct {
	Name          string            `json:"name"`
	OwnerIdentity map[string]string `json:"ownerIdentity"`
	ARN           string            `json:"arn"`
}

// RecordObject names the object; keys are URL-encoded as S3 does.
type RecordObject struct {
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	ETag      string `json:"eTag,omitempty"`
	Sequencer string `json:"sequencer"`
}

func (s *Service) record(bucket, key, name string, size int64, configID string, seq uint64) Record {
	return Record{
		EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: s.cfg.Region,
		EventTime: s.cfg.Clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"), EventName: name,
		UserIdentity:      map[string]string{"principalId": "AWS:" + s.cfg.AccountID},
		RequestParameters: map[string]string{"sourceIPAddress": "127.0.0.1"},
		ResponseElements:  map[string]string{"x-amz-request-id": requestID(), "x-amz-id-2": requestID()},
		S3: RecordS3{
			SchemaVersion: "1.0", ConfigurationID: configID,
			Bucket: RecordBucket{Name: bucket, OwnerIdentity: map[string]string{"principalId": s.cfg.AccountID}, ARN: "arn:aws:s3:::" + bucket},
			Object: RecordObject{Key: s3KeyEscape(key), Size: max(size, 0), Sequencer: fmt.Sprintf("%016X", seq)},
		},
	}
}

// s3KeyEscape encodes a key as S3 does in event records (form encoding:
// spaces become '+').
func s3KeyEscape(k string) string {
	var b strings.Builder
	for _, c := range []byte(k) {
		switch {
		case c == ' ':
			b.WriteByte('+')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-_.~/!*'()", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func requestID() string {
	return fmt.Sprintf("%016X", time.Now().UnixNano())
}

func (s *Service) statePath() string { return filepath.Join(s.cfg.DataDir, "notifications.json") }

func (s *Service) load() error {
	if _, err := statefile.ReadJSON(s.statePath(), &s.configs); err != nil {
		return fmt.Errorf("reading S3 notification configurations: %w", err)
	}
	return nil
}

func (s *Service) saveLocked() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	if err := statefile.WriteJSON(s.statePath(), s.configs); err != nil {
		return fmt.Errorf("saving S3 notification configurations: %w", err)
	}
	return nil
}
