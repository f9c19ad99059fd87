package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// schemaVersion is the item layout this code reads and writes. Version 1
// is the layout of the package comment, which tables written before the
// version was recorded have too. A change that older code could misread
// must raise it, and Open then refuses the table to those older versions.
const schemaVersion = 1

// skSchema is the sort key of the item, in the meta partition, that
// records the table's schema version.
const skSchema = "schema"

// settleSchemaVersion records schemaVersion in a table that has no
// version yet (every table written before it was recorded holds version 1)
// and refuses one whose version is newer than this code.
func (s *Store) settleSchemaVersion(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if errors.Is(err, errNoSchema) {
		v, err = s.recordSchemaVersion(ctx)
	}
	switch {
	case err != nil:
		return err
	case v > schemaVersion:
		return fmt.Errorf("the table holds a schema version %d ledger, and this handover knows only up to version %d: upgrade handover to use it", v, schemaVersion)
	}
	return nil
}

// recordSchemaVersion writes the version item if there is none and
// returns the version stored, which another process may have written
// first.
func (s *Store) recordSchemaVersion(ctx context.Context) (int, error) {
	item := key(kindMeta, skSchema)
	item[attrVersion] = num(schemaVersion)
	err := s.write(nil, func(opt func(*dynamodb.Options)) error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: names(attrPK),
		}, opt)
		return err
	})
	switch {
	case errors.Is(err, errCondition):
		return s.SchemaVersion(ctx)
	case err != nil:
		return 0, fmt.Errorf("recording the schema version: %w", err)
	}
	s.logger.Info("dynamodb ledger schema version recorded", "table", s.table, "schema-version", schemaVersion)
	return schemaVersion, nil
}

// errNoSchema: the table has no schema version item.
var errNoSchema = errors.New("no schema version recorded")

// SchemaVersion implements ledger.Store with a consistent read of the
// version item that Open writes.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	item, err := s.getItem(ctx, kindMeta, skSchema, attrVersion)
	if err == nil && item == nil {
		err = errNoSchema
	}
	if err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	v, err := getInt(item, attrVersion)
	if err == nil && v < 1 {
		err = fmt.Errorf("version %d is not a schema version", v)
	}
	if err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return int(v), nil
}
