package dynamodb_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/ledger"
	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
	"github.com/handover-dev/handover/internal/testenv/dynalitetest"
)

// syncBuffer is a log sink safe for the goroutines of one test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestCreateTableIdempotent: creating the table again, or from several
// controllers at once, succeeds and leaves one usable table.
func TestCreateTableIdempotent(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := dynalitetest.Table(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = ddbledger.CreateTable(ctx, client, table, nil) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent CreateTable: %v", err)
		}
	}
	l := open(t, client, table)
	if err := l.SaveDatabase(ctx, &ledger.Database{ID: "orders"}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	if err := ddbledger.CreateTable(ctx, client, table, logger(&logs)); err != nil {
		t.Fatalf("CreateTable on an existing table: %v", err)
	}
	if !strings.Contains(logs.String(), "table exists") {
		t.Errorf("second CreateTable did not notice the table exists; log:\n%s", logs.String())
	}
	if _, err := l.GetDatabase(ctx, "orders"); err != nil {
		t.Errorf("CreateTable on an existing table lost its records: %v", err)
	}
}

// TestCreateTableTTL covers the TTL step: enabled when off, left alone when
// on, and a warning, not a failure, where the endpoint lacks it.
func TestCreateTableTTL(t *testing.T) {
	enabled := func(attr string) *types.TimeToLiveDescription {
		return &types.TimeToLiveDescription{TimeToLiveStatus: types.TimeToLiveStatusEnabled, AttributeName: aws.String(attr)}
	}
	for _, tc := range []struct {
		name       string
		ttl        *types.TimeToLiveDescription // nil: dynalite's own answer
		nextErr    map[string]error
		wantUpdate bool   // UpdateTimeToLive called with expires_at
		wantWarn   string // substring of a warning; empty: no warning
	}{
		{name: "dynalite has no UpdateTimeToLive", wantUpdate: true, wantWarn: "does not support UpdateTimeToLive"},
		{name: "off: enabled", ttl: &types.TimeToLiveDescription{TimeToLiveStatus: types.TimeToLiveStatusDisabled}, wantUpdate: true},
		{name: "already on", ttl: enabled("expires_at")},
		{name: "on another attribute", ttl: enabled("other"), wantWarn: "another attribute, other"},
		{name: "refused", ttl: &types.TimeToLiveDescription{TimeToLiveStatus: types.TimeToLiveStatusDisabled},
			nextErr:    map[string]error{"UpdateTimeToLive": &smithy.GenericAPIError{Code: "ValidationException", Message: "Time to live has been modified multiple times within a fixed interval"}},
			wantUpdate: true, wantWarn: "UpdateTimeToLive failed"},
		{name: "describe denied",
			nextErr:  map[string]error{"DescribeTimeToLive": &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "no"}},
			wantWarn: "DescribeTimeToLive failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAPI{Real: dynalitetest.Client(t), TTL: tc.ttl, NextErr: tc.nextErr}
			var logs syncBuffer
			if err := ddbledger.CreateTable(t.Context(), fake, dynalitetest.Table(t), logger(&logs)); err != nil {
				t.Fatalf("CreateTable: %v", err)
			}
			if got := fake.CallCount("UpdateTimeToLive") > 0; got != tc.wantUpdate {
				t.Errorf("UpdateTimeToLive called: %v, want %v", got, tc.wantUpdate)
			}
			for _, spec := range fake.TTLSpecs {
				if aws.ToString(spec.AttributeName) != "expires_at" || !aws.ToBool(spec.Enabled) {
					t.Errorf("UpdateTimeToLive(%s, enabled=%v), want expires_at enabled", aws.ToString(spec.AttributeName), aws.ToBool(spec.Enabled))
				}
			}
			warned := strings.Contains(logs.String(), "level=WARN")
			if tc.wantWarn == "" && warned {
				t.Errorf("unexpected warning:\n%s", logs.String())
			}
			if tc.wantWarn != "" && (!warned || !strings.Contains(logs.String(), tc.wantWarn)) {
				t.Errorf("want a warning containing %q; log:\n%s", tc.wantWarn, logs.String())
			}
		})
	}
}

// TestOpenMissingTable: the error names the table, says to create it, and
// is not ledger.ErrNotFound (which callers read as "record absent").
func TestOpenMissingTable(t *testing.T) {
	table := dynalitetest.Table(t)
	_, err := ddbledger.Open(t.Context(), dynalitetest.Client(t), table, nil)
	if !errors.Is(err, ddbledger.ErrTableNotFound) {
		t.Fatalf("Open of a missing table: %v, want ErrTableNotFound", err)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("error %v matches ledger.ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), table) || !strings.Contains(err.Error(), "create it") {
		t.Errorf("error %q does not name the table and say to create it", err)
	}
}

// TestTableDeletedUnderLedger: once the table is gone, record calls fail
// with ErrTableNotFound too, not with a sentinel that reads as an answer.
func TestTableDeletedUnderLedger(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := newTable(t)
	l := open(t, client, table)
	if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
		t.Fatal(err)
	}
	// dynalite keeps a deleted table DELETING for a moment, during which it
	// still refuses writes with ResourceNotFoundException or
	// ResourceInUseException; wait until it is gone.
	w := dynamodb.NewTableNotExistsWaiter(client, func(o *dynamodb.TableNotExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err := l.GetMigration(ctx, "m")
	if !errors.Is(err, ddbledger.ErrTableNotFound) || errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("GetMigration on a deleted table: %v, want ErrTableNotFound only", err)
	}
	_, err = l.MarkEvent(ctx, "e", time.Unix(0, 0), time.Unix(60, 0))
	if !errors.Is(err, ddbledger.ErrTableNotFound) {
		t.Errorf("MarkEvent on a deleted table: %v, want ErrTableNotFound", err)
	}
}

// TestWrongKeySchema: a table of another application is refused at Open
// and by CreateTable, instead of failing on the first write.
func TestWrongKeySchema(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := dynalitetest.Table(t)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ddbledger.CreateTable(ctx, client, table, nil); err == nil || !strings.Contains(err.Error(), "key schema") {
		t.Errorf("CreateTable over a foreign table: %v, want a key schema error", err)
	}
	if _, err := ddbledger.Open(ctx, client, table, nil); err == nil || !strings.Contains(err.Error(), "key schema") {
		t.Errorf("Open of a foreign table: %v, want a key schema error", err)
	}
}

func rawItem(t *testing.T, client *dynamodb.Client, table, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk},
			"sk": &types.AttributeValueMemberS{Value: sk},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		t.Fatalf("no item %s/%s", pk, sk)
	}
	return out.Item
}

func numAttr(item map[string]types.AttributeValue, name string) string {
	if n, ok := item[name].(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}
