package dynamodb_test

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
)

// fakeAPI records the calls made through it and passes them on to Real
// (dynalite), except where NextErr holds an error for the operation (used
// once) or TTL holds a canned DescribeTimeToLive answer.
type fakeAPI struct {
	Real *dynamodb.Client

	mu      sync.Mutex
	NextErr map[string]error
	TTL     *types.TimeToLiveDescription
	Calls   []string
	// TTLSpecs are the specifications UpdateTimeToLive was called with.
	TTLSpecs []types.TimeToLiveSpecification
}

var (
	_ ddbledger.API      = (*fakeAPI)(nil)
	_ ddbledger.AdminAPI = (*fakeAPI)(nil)
)

// Reset forgets the calls and pending errors.
func (f *fakeAPI) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.NextErr, f.TTL, f.Calls, f.TTLSpecs = nil, nil, nil, nil
}

// CallCount returns how many times op was called.
func (f *fakeAPI) CallCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.Calls {
		if c == op {
			n++
		}
	}
	return n
}

func (f *fakeAPI) record(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, op)
	if err := f.NextErr[op]; err != nil {
		delete(f.NextErr, op)
		return err
	}
	if f.Real == nil {
		return errors.New("fakeAPI: no real client for " + op)
	}
	return nil
}

func (f *fakeAPI) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := f.record("GetItem"); err != nil {
		return nil, err
	}
	return f.Real.GetItem(ctx, in, opts...)
}

func (f *fakeAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := f.record("PutItem"); err != nil {
		return nil, err
	}
	return f.Real.PutItem(ctx, in, opts...)
}

func (f *fakeAPI) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := f.record("UpdateItem"); err != nil {
		return nil, err
	}
	return f.Real.UpdateItem(ctx, in, opts...)
}

func (f *fakeAPI) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := f.record("DeleteItem"); err != nil {
		return nil, err
	}
	return f.Real.DeleteItem(ctx, in, opts...)
}

func (f *fakeAPI) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := f.record("Query"); err != nil {
		return nil, err
	}
	return f.Real.Query(ctx, in, opts...)
}

func (f *fakeAPI) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if err := f.record("DescribeTable"); err != nil {
		return nil, err
	}
	return f.Real.DescribeTable(ctx, in, opts...)
}

func (f *fakeAPI) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	if err := f.record("CreateTable"); err != nil {
		return nil, err
	}
	return f.Real.CreateTable(ctx, in, opts...)
}

func (f *fakeAPI) DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	if err := f.record("DescribeTimeToLive"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	canned := f.TTL
	f.mu.Unlock()
	if canned != nil {
		return &dynamodb.DescribeTimeToLiveOutput{TimeToLiveDescription: canned}, nil
	}
	return f.Real.DescribeTimeToLive(ctx, in, opts...)
}

// UpdateTimeToLive succeeds without calling Real when TTL is set (dynalite
// has no such operation), and records the specification either way.
func (f *fakeAPI) UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	if err := f.record("UpdateTimeToLive"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	canned := f.TTL != nil
	if in.TimeToLiveSpecification != nil {
		f.TTLSpecs = append(f.TTLSpecs, *in.TimeToLiveSpecification)
	}
	f.mu.Unlock()
	if canned {
		return &dynamodb.UpdateTimeToLiveOutput{TimeToLiveSpecification: in.TimeToLiveSpecification}, nil
	}
	return f.Real.UpdateTimeToLive(ctx, in, opts...)
}
