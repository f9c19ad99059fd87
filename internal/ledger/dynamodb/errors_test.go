package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/ledger"
)

func TestTranslate(t *testing.T) {
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "PutItem", Err: err}
	}
	api := func(code, msg string) error { return op(&smithy.GenericAPIError{Code: code, Message: msg}) }
	ccf := op(&types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")})
	other := errors.New("something else")
	sentinels := []error{ledger.ErrNotFound, ledger.ErrExists, ledger.ErrConflict, ledger.ErrLeaseHeld,
		ErrTableNotFound, errCondition, errTableInUse, errUnsupported}
	for _, tc := range []struct {
		name        string
		err         error
		onCondition error
		want        error  // the one sentinel it must match; nil: none
		keep        bool   // the original error stays in the chain
		msgHas      string // substring of the message
	}{
		{name: "condition failed on a create", err: ccf, onCondition: ledger.ErrExists, want: ledger.ErrExists},
		{name: "condition failed on a CAS", err: ccf, onCondition: ledger.ErrConflict, want: ledger.ErrConflict},
		{name: "condition failed, caller looks closer", err: ccf, want: errCondition},
		{name: "condition failed, generic shape", err: api("ConditionalCheckFailedException", "x"), want: errCondition},
		{name: "no table", err: op(&types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}),
			want: ErrTableNotFound, keep: true, msgHas: `table "ledger-t"`},
		{name: "table in use", err: op(&types.ResourceInUseException{Message: aws.String("Table already exists")}), want: errTableInUse, keep: true},
		{name: "unknown operation", err: api("UnknownOperationException", ""), want: errUnsupported, keep: true},
		{name: "item too large", err: api("ValidationException", "Item size has exceeded the maximum allowed size"), keep: true, msgHas: "too large"},
		{name: "other validation", err: api("ValidationException", "Invalid UpdateExpression"), keep: true},
		{name: "throttled", err: op(&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}), keep: true},
		{name: "access denied", err: api("AccessDeniedException", "no"), keep: true},
		{name: "plain error", err: other, keep: true},
		{name: "context", err: fmt.Errorf("op: %w", context.DeadlineExceeded), keep: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := translate(tc.err, "ledger-t", tc.onCondition)
			for _, s := range sentinels {
				if want := s == tc.want; errors.Is(got, s) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", got, s, !want, want)
				}
			}
			if tc.keep && !errors.Is(got, tc.err) {
				t.Errorf("translate(%v) = %v, lost the original error", tc.err, got)
			}
			if !strings.Contains(got.Error(), tc.msgHas) {
				t.Errorf("message %q does not contain %q", got, tc.msgHas)
			}
		})
	}
	if translate(nil, "t", ledger.ErrExists) != nil {
		t.Error("translate(nil) != nil")
	}
}

func TestTimeNum(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC), // before the epoch: nanoseconds stay positive
		time.Unix(0, 0),
		{}, // year 1, the zero time
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
	} {
		av, err := timeNum(tm)
		if err != nil {
			t.Fatalf("timeNum(%s): %v", tm, err)
		}
		back, err := parseTimeNum(av.(*types.AttributeValueMemberN).Value)
		if err != nil || !back.Equal(tm) {
			t.Errorf("round trip of %s via %v = %s, %v", tm, av, back, err)
		}
	}
	// Numbers must order as the times do: DynamoDB compares them.
	times := []time.Time{{}, time.Date(1969, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(1969, 1, 1, 0, 0, 0, 6, time.UTC), time.Unix(0, 0), time.Unix(0, 1)}
	for i := 1; i < len(times); i++ {
		a, _ := timeNum(times[i-1])
		b, _ := timeNum(times[i])
		x, _ := new(big.Int).SetString(a.(*types.AttributeValueMemberN).Value, 10)
		y, _ := new(big.Int).SetString(b.(*types.AttributeValueMemberN).Value, 10)
		if x.Cmp(y) >= 0 {
			t.Errorf("timeNum(%s) = %s is not below timeNum(%s) = %s", times[i-1], x, times[i], y)
		}
	}
	for _, bad := range []time.Time{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := timeNum(bad); err == nil {
			t.Errorf("timeNum(%s) accepted a year outside 1–9999", bad)
		}
	}
	for _, bad := range []string{"", "1.5", "x", "99999999999999999999999999999999999999"} {
		if _, err := parseTimeNum(bad); err == nil {
			t.Errorf("parseTimeNum(%q) accepted it", bad)
		}
	}
}

func TestTTLSecondsRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(100, 0), 100},
		{time.Unix(100, 1), 101},
		{time.Unix(100, 999999999), 101},
	} {
		if got := ttlSeconds(tc.t); got != tc.want {
			t.Errorf("ttlSeconds(%s) = %d, want %d", tc.t, got, tc.want)
		}
	}
}
