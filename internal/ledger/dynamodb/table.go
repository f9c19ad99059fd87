package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// tableWaitTimeout bounds waiting for a table to become ACTIVE when the
// caller's context has no deadline. AWS creates a table in seconds.
const tableWaitTimeout = 5 * time.Minute

// CreateTable creates the ledger's table (on-demand billing, the key schema
// of the package comment), waits until it is ACTIVE and enables TTL on
// expires_at. Safe to repeat: an existing table is checked, not changed,
// except that TTL is enabled if it is off. An endpoint without TTL support
// (dynalite) gets a warning only: correctness never depends on TTL. A nil
// logger discards.
func CreateTable(ctx context.Context, api AdminAPI, table string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	_, err := api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	switch err := translate(err, table, nil); {
	case errors.Is(err, errTableInUse):
		logger.Debug("dynamodb ledger table exists", "table", table)
	case err != nil:
		return fmt.Errorf("creating dynamodb table %s: %w", table, err)
	default:
		logger.Info("dynamodb ledger table created", "table", table)
	}
	// Just after CreateTable, DescribeTable may not see the table yet
	// (its metadata is read eventually consistently): allow for that.
	if err := waitForTable(ctx, api, table, true); err != nil {
		return fmt.Errorf("creating dynamodb table %s: %w", table, err)
	}
	if err := enableTTL(ctx, api, table, logger); err != nil {
		return fmt.Errorf("creating dynamodb table %s: enabling TTL on %s: %w", table, attrTTL, err)
	}
	return nil
}

// waitActive waits while table is being created and checks that it has the
// ledger's key schema. A missing table is ErrTableNotFound at once.
func waitActive(ctx context.Context, api TableDescriber, table string) error {
	return waitForTable(ctx, api, table, false)
}

func waitForTable(ctx context.Context, api TableDescriber, table string, justCreated bool) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tableWaitTimeout)
		defer cancel()
	}
	delay := 50 * time.Millisecond
	for {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		err = translate(err, table, nil)
		switch {
		case errors.Is(err, ErrTableNotFound) && justCreated:
		case err != nil:
			return err
		case out.Table == nil:
			return fmt.Errorf("describing table %s: no description returned", table)
		default:
			switch status := out.Table.TableStatus; status {
			case types.TableStatusActive, types.TableStatusUpdating:
				return checkSchema(out.Table)
			case types.TableStatusCreating:
			default:
				return fmt.Errorf("table %s is %s, not usable as a ledger", table, status)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for table %s to become ACTIVE: %w", table, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// checkSchema refuses a table whose keys are not the ledger's, which would
// otherwise fail on the first write with a less telling ValidationException.
func checkSchema(t *types.TableDescription) error {
	keyType := map[string]types.KeyType{}
	for _, k := range t.KeySchema {
		keyType[aws.ToString(k.AttributeName)] = k.KeyType
	}
	attrType := map[string]types.ScalarAttributeType{}
	for _, a := range t.AttributeDefinitions {
		attrType[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if len(keyType) != 2 ||
		keyType[attrPK] != types.KeyTypeHash || attrType[attrPK] != types.ScalarAttributeTypeS ||
		keyType[attrSK] != types.KeyTypeRange || attrType[attrSK] != types.ScalarAttributeTypeS {
		return fmt.Errorf("table %s does not have the ledger's key schema (partition key %s and sort key %s, both strings): is it another application's table?",
			aws.ToString(t.TableName), attrPK, attrSK)
	}
	return nil
}

// enableTTL turns on TTL deletion of expired events, unless it is already
// on. TTL only keeps the table small, so a failure other than the context
// ending is logged, not returned: an endpoint without TTL (dynalite), a
// role without the permission, or AWS refusing a second change within its
// interval must not stop a controller from starting.
func enableTTL(ctx context.Context, api AdminAPI, table string, logger *slog.Logger) error {
	warn := func(why string, err error) error {
		if ctx.Err() != nil {
			return err
		}
		logger.Warn("ledger table has no TTL deletion: expired events are removed only by PruneEvents",
			"table", table, "reason", why, "error", err)
		return nil
	}
	desc, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err := translate(err, table, nil); err != nil {
		return warn("DescribeTimeToLive failed", err)
	}
	if d := desc.TimeToLiveDescription; d != nil {
		switch d.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if attr := aws.ToString(d.AttributeName); attr != attrTTL {
				return warn("TTL is enabled on another attribute, "+attr, nil)
			}
			return nil
		}
	}
	_, err = api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrTTL),
			Enabled:       aws.Bool(true),
		},
	})
	switch err := translate(err, table, nil); {
	case errors.Is(err, errUnsupported):
		return warn("the endpoint does not support UpdateTimeToLive", err)
	case err != nil:
		return warn("UpdateTimeToLive failed", err)
	}
	logger.Info("ledger table TTL enabled", "table", table, "attribute", attrTTL)
	return nil
}
