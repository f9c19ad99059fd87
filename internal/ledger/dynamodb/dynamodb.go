// Package dynamodb is the ledger backend for serverless deployments: one
// DynamoDB table, reached through aws-sdk-go-v2, shared by any number of
// controllers or Lambda invocations. It implements ledger.Store, so it
// knows record kinds only as ledger.Kind declares them: adding a kind needs
// no code here.
//
// # Table design
//
// One table with a string partition key pk and a string sort key sk. Each
// record kind lives in the partition named after it, keyed within it by
// the record's id:
//
//	pk          sk            other attributes
//	<kind>      <id>          version (N), body (S: JSON), terminal (BOOL: Record.Done),
//	                          and one S attribute per indexed key, named after it
//	meta        schema        version (N): the schema version, now 1
//	event       <id>          expires_ns (N), expires_at (N: TTL)
//	lease       <name>        holder (S, "" once released), token (N), expires_ns (N)
//
// The kinds today are migration (keys database and instance), database (no
// keys) and update (key group), laid out exactly as the hand-written
// encoders before ledger.Store laid them out, so tables written then are
// read unchanged and records saved now stay readable to that code: every
// declared key is stored, "" when unset, and terminal on every record. Only
// database items written before ledger.Store lack terminal, which reads as
// not done. The body carries the version too (ledger.Records puts it
// there); the version attribute wins.
//
// Tables written before the schema version was recorded hold version 1;
// Open records it in such a table and refuses one whose version is newer
// than this code knows. Kinds named event, lease or meta, and keys named
// after a record attribute (pk, sk, version, body, terminal, expires_at),
// are refused.
//
// A partition per kind makes every list a Query on one partition with
// ConsistentRead, which sees every write that completed before it. A global
// secondary index would spread the load, but GSI reads are only eventually
// consistent: a migration listed right after its update could come back
// stale. The cost is one partition's throughput per kind (about 1,000 writes
// and 3,000 reads a second), orders of magnitude above what handover
// writes. Lists page through LastEvaluatedKey and filter on terminal and
// the key attributes in DynamoDB; the Query returns them in id order, and
// ledger.Records sorts them by creation time.
//
// Times that are compared (expiries) are numbers of nanoseconds since the
// Unix epoch, so DynamoDB compares them exactly; like the SQL backends, years
// outside 1–9999 are refused.
//
// # Rules
//
// Every write is a single request whose ConditionExpression makes the whole
// decision: attribute_not_exists(pk) for creates, version = :v for updates,
// the holder and expiry for leases, the expiry for events. This package must
// never read an item, decide in Go, and write it back unconditionally, and
// must never overwrite a record without checking its version. Reads are
// strongly consistent. Records are never deleted, except expired events.
//
// A failed write matches ledger.ErrRetry only if DynamoDB throttled every
// attempt the SDK made at it, since throttling is decided before a write is
// applied. A server error, a timeout or a lost connection leaves the
// outcome unknown and is never so marked (see refusalCodes).
//
// Event items carry expires_at (whole epoch seconds, rounded up) for
// DynamoDB's TTL deletion, which CreateTable enables. TTL only keeps the
// table small: AWS deletes expired items within days, and emulators not at
// all, so EventSeen and MarkEvent compare expires_ns themselves and
// PruneEvents deletes expired items itself. Only event items have
// expires_at: a lease must outlive its expiry to keep its token.
//
// # Emulators
//
// Tested against dynalite (see internal/testenv/dynalitetest), which
// implements condition, update, key-condition and filter expressions, Query
// paging by Limit and by 1 MB, and ReturnValues — but not UpdateTimeToLive
// (UnknownOperationException; CreateTable logs a warning and goes on),
// nor TTL deletion, nor ReturnValuesOnConditionCheckFailure (ignored). So
// a failed condition is explained with a second, consistent read where the
// caller needs to know why, never by the item a failure may carry.
package dynamodb

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
)

// Partition key values of this package's own items. Records are stored
// under their kind's name (ledger.Kind.Name): migration, database, update.
const (
	kindEvent = "event"
	kindLease = "lease"
	kindMeta  = "meta"
)

// Attribute names. Expressions always refer to them through #placeholders:
// several (version, and the key names database, instance, group) are
// DynamoDB reserved words.
const (
	attrPK        = "pk"
	attrSK        = "sk"
	attrVersion   = "version"
	attrBody      = "body"
	attrTerminal  = "terminal"
	attrExpiresNS = "expires_ns"
	// attrTTL is the table's TTL attribute; only event items may have it.
	attrTTL    = "expires_at"
	attrHolder = "holder"
	attrToken  = "token"
)

// Store is a ledger.Store kept in one DynamoDB table.
type Store struct {
	api    API
	table  string
	logger *slog.Logger
	// pageLimit caps the items of one Query page; 0 leaves it to DynamoDB
	// (1 MB). Tests lower it to exercise paging.
	pageLimit int32
}

var _ ledger.Store = (*Store)(nil)

// Open returns the ledger kept in table, which must exist with the key
// schema CreateTable gives it (it waits while the table is still being
// created). It records the schema version in a table that has none, and
// refuses a table written by a newer handover. The client is the caller's
// and is not closed by Close. A nil logger discards.
func Open(ctx context.Context, api API, table string, logger *slog.Logger) (*ledger.Records, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := waitActive(ctx, api, table); err != nil {
		return nil, fmt.Errorf("opening dynamodb ledger %s: %w", table, err)
	}
	s := &Store{api: api, table: table, logger: logger}
	if err := s.settleSchemaVersion(ctx); err != nil {
		return nil, fmt.Errorf("opening dynamodb ledger %s: %w", table, err)
	}
	logger.Debug("dynamodb ledger open", "table", table)
	return ledger.New(s), nil
}

// Close implements ledger.Store. It has nothing to release: the client
// belongs to the caller.
func (s *Store) Close() error { return nil }

func key(kind, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: kind},
		attrSK: &types.AttributeValueMemberS{Value: id},
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// names maps #placeholders to attribute names for an expression.
func names(attrs ...string) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m["#"+a] = a
	}
	return m
}

// query pages through every item of kind's partition that passes filter
// (empty: all), in sort key order. Filtering happens after a page is read,
// so a page may come back empty yet not be the last.
func (s *Store) query(ctx context.Context, kind, filter string, attrNames map[string]string, values map[string]types.AttributeValue, projection string) ([]map[string]types.AttributeValue, error) {
	if attrNames == nil {
		attrNames = map[string]string{}
	}
	attrNames["#pk"] = attrPK
	if values == nil {
		values = map[string]types.AttributeValue{}
	}
	values[":pk"] = str(kind)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  attrNames,
		ExpressionAttributeValues: values,
		ConsistentRead:            aws.Bool(true),
	}
	if filter != "" {
		in.FilterExpression = aws.String(filter)
	}
	if projection != "" {
		in.ProjectionExpression = aws.String(projection)
	}
	if s.pageLimit > 0 {
		in.Limit = aws.Int32(s.pageLimit)
	}
	var items []map[string]types.AttributeValue
	for {
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return nil, translate(err, s.table, nil)
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// getItem reads one item with a consistent read; nil if absent.
func (s *Store) getItem(ctx context.Context, kind, id string, projection ...string) (map[string]types.AttributeValue, error) {
	in := &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(kind, id),
		ConsistentRead: aws.Bool(true),
	}
	if len(projection) > 0 {
		placeholders := make([]string, len(projection))
		for i, a := range projection {
			placeholders[i] = "#" + a
		}
		in.ProjectionExpression = aws.String(strings.Join(placeholders, ", "))
		in.ExpressionAttributeNames = names(projection...)
	}
	out, err := s.api.GetItem(ctx, in)
	if err != nil {
		return nil, translate(err, s.table, nil)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// Item decoding. A stored item that lacks an attribute or has the wrong
// type is corrupt, never a reason to guess.

func getS(item map[string]types.AttributeValue, name string) (string, error) {
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("stored item has no string attribute %s", name)
	}
	return v.Value, nil
}

func getN(item map[string]types.AttributeValue, name string) (string, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return "", fmt.Errorf("stored item has no number attribute %s", name)
	}
	return v.Value, nil
}

func getInt(item map[string]types.AttributeValue, name string) (int64, error) {
	s, err := getN(item, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stored attribute %s: %w", name, err)
	}
	return n, nil
}

func getTime(item map[string]types.AttributeValue, name string) (time.Time, error) {
	s, err := getN(item, name)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseTimeNum(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored attribute %s: %w", name, err)
	}
	return t, nil
}

var nanosPerSecond = big.NewInt(int64(time.Second))

// timeNum encodes t as nanoseconds since the Unix epoch. int64 nanoseconds
// would end in 2262, so the number is computed exactly as a big integer;
// DynamoDB numbers hold 38 digits, and years 1–9999 need 21.
func timeNum(t time.Time) (types.AttributeValue, error) {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("time %s is outside the years 1 to 9999", t)
	}
	n := new(big.Int).Mul(big.NewInt(t.Unix()), nanosPerSecond)
	n.Add(n, big.NewInt(int64(t.Nanosecond())))
	return &types.AttributeValueMemberN{Value: n.String()}, nil
}

func parseTimeNum(s string) (time.Time, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a time in nanoseconds", s)
	}
	// Euclidean division keeps the nanoseconds in [0, 1e9) before 1970.
	sec, nsec := new(big.Int).DivMod(n, nanosPerSecond, new(big.Int))
	if !sec.IsInt64() {
		return time.Time{}, fmt.Errorf("time %s ns is out of range", s)
	}
	return time.Unix(sec.Int64(), nsec.Int64()).UTC(), nil
}

// ttlSeconds is expires as whole epoch seconds rounded up, so DynamoDB's
// TTL (which deletes an item once its attribute is below the current
// second) never deletes an event before it expired.
func ttlSeconds(expires time.Time) int64 {
	s := expires.Unix()
	if expires.Nanosecond() > 0 {
		s++
	}
	return s
}
