package dynamodb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
)

// migrationItem encodes m as stored at version: the body carries the new
// version too, so that it always agrees with the attribute. The queried
// fields are copied out of the body so filters can see them.
func migrationItem(m *ledger.Migration, version int64) (map[string]types.AttributeValue, error) {
	c := *m
	c.Version = version
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	item := key(kindMigration, m.ID)
	item[attrVersion] = num(version)
	item[attrBody] = str(string(body))
	item[attrDatabase] = str(m.Database)
	item[attrInstance] = str(m.Instance)
	item[attrTerminal] = &types.AttributeValueMemberBOOL{Value: m.State.Terminal()}
	return item, nil
}

func databaseItem(d *ledger.Database, version int64) (map[string]types.AttributeValue, error) {
	c := *d
	c.Version = version
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	item := key(kindDatabase, d.ID)
	item[attrVersion] = num(version)
	item[attrBody] = str(string(body))
	return item, nil
}

// decodeRecord fills v (a *ledger.Migration, *ledger.Database or
// *ledger.Update) from an item and returns the item's version, which wins
// over the body's.
func decodeRecord(item map[string]types.AttributeValue, v any) (int64, error) {
	version, err := getInt(item, attrVersion)
	if err != nil {
		return 0, err
	}
	body, err := getS(item, attrBody)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return 0, fmt.Errorf("decoding stored record: %w", err)
	}
	return version, nil
}

func decodeMigration(item map[string]types.AttributeValue) (*ledger.Migration, error) {
	m := new(ledger.Migration)
	v, err := decodeRecord(item, m)
	if err != nil {
		return nil, err
	}
	m.Version = v
	return m, nil
}

func decodeDatabase(item map[string]types.AttributeValue) (*ledger.Database, error) {
	d := new(ledger.Database)
	v, err := decodeRecord(item, d)
	if err != nil {
		return nil, err
	}
	d.Version = v
	return d, nil
}

// create writes item only if no item has its key; onExists is what a
// present one means to the caller.
func (l *Ledger) create(ctx context.Context, item map[string]types.AttributeValue, onExists error) error {
	_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(l.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: names(attrPK),
	})
	return translate(err, l.table, onExists)
}

// replace writes item only if the stored one is at version; otherwise it
// tells ErrNotFound from ErrConflict with a second read. Records are never
// deleted, so an item present now was present when the write was refused.
func (l *Ledger) replace(ctx context.Context, kind, id string, item map[string]types.AttributeValue, version int64) error {
	_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(l.table),
		Item:                      item,
		ConditionExpression:       aws.String("#version = :v"),
		ExpressionAttributeNames:  names(attrVersion),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(version)},
	})
	err = translate(err, l.table, nil)
	if !errors.Is(err, errCondition) {
		return err
	}
	stored, err := l.getItem(ctx, kind, id, attrVersion)
	switch {
	case err != nil:
		return fmt.Errorf("checking why the update failed: %w", err)
	case stored == nil:
		return ledger.ErrNotFound
	}
	have, err := getInt(stored, attrVersion)
	if err != nil {
		return fmt.Errorf("checking why the update failed: %w", err)
	}
	return fmt.Errorf("at version %d (stored %d): %w", version, have, ledger.ErrConflict)
}

// CreateMigration implements ledger.Ledger.
func (l *Ledger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	item, err := migrationItem(m, 1)
	if err != nil {
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	if err := l.create(ctx, item, ledger.ErrExists); err != nil {
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	m.Version = 1
	return nil
}

// GetMigration implements ledger.Ledger.
func (l *Ledger) GetMigration(ctx context.Context, id string) (*ledger.Migration, error) {
	item, err := l.getItem(ctx, kindMigration, id)
	if err == nil && item == nil {
		err = ledger.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("getting migration %s: %w", id, err)
	}
	m, err := decodeMigration(item)
	if err != nil {
		return nil, fmt.Errorf("getting migration %s: %w", id, err)
	}
	return m, nil
}

// SaveMigration implements ledger.Ledger.
func (l *Ledger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	next := m.Version + 1
	item, err := migrationItem(m, next)
	if err != nil {
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	if err := l.replace(ctx, kindMigration, m.ID, item, m.Version); err != nil {
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	m.Version = next
	return nil
}

// ListMigrations implements ledger.Ledger.
func (l *Ledger) ListMigrations(ctx context.Context, q ledger.MigrationQuery) ([]*ledger.Migration, error) {
	var conds []string
	attrNames := names(attrVersion, attrBody)
	values := map[string]types.AttributeValue{}
	if q.Unfinished {
		conds = append(conds, "#terminal = :false")
		attrNames["#"+attrTerminal] = attrTerminal
		values[":false"] = &types.AttributeValueMemberBOOL{Value: false}
	}
	if q.Database != "" {
		conds = append(conds, "#database = :database")
		attrNames["#"+attrDatabase] = attrDatabase
		values[":database"] = str(q.Database)
	}
	if q.Instance != "" {
		conds = append(conds, "#instance = :instance")
		attrNames["#"+attrInstance] = attrInstance
		values[":instance"] = str(q.Instance)
	}
	items, err := l.query(ctx, kindMigration, strings.Join(conds, " AND "), attrNames, values, "#version, #body")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	out := make([]*ledger.Migration, 0, len(items))
	for _, item := range items {
		m, err := decodeMigration(item)
		if err != nil {
			return nil, fmt.Errorf("listing migrations: %w", err)
		}
		out = append(out, m)
	}
	// The partition is in id order; the contract is creation order.
	slices.SortFunc(out, func(a, b *ledger.Migration) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// GetDatabase implements ledger.Ledger.
func (l *Ledger) GetDatabase(ctx context.Context, id string) (*ledger.Database, error) {
	item, err := l.getItem(ctx, kindDatabase, id)
	if err == nil && item == nil {
		err = ledger.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("getting database %s: %w", id, err)
	}
	d, err := decodeDatabase(item)
	if err != nil {
		return nil, fmt.Errorf("getting database %s: %w", id, err)
	}
	return d, nil
}

// SaveDatabase implements ledger.Ledger.
func (l *Ledger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	next := d.Version + 1
	item, err := databaseItem(d, next)
	if err != nil {
		return fmt.Errorf("putting database %s: %w", d.ID, err)
	}
	if d.Version == 0 {
		// A lost race to create is a lost compare-and-set from version 0.
		if err := l.create(ctx, item, ledger.ErrConflict); err != nil {
			return fmt.Errorf("creating database %s: %w", d.ID, err)
		}
	} else if err := l.replace(ctx, kindDatabase, d.ID, item, d.Version); err != nil {
		return fmt.Errorf("updating database %s: %w", d.ID, err)
	}
	d.Version = next
	return nil
}

// ListDatabases implements ledger.Ledger. DynamoDB orders string sort keys
// by their UTF-8 bytes, which is Go's string order, so the Query's order is
// the contract's.
func (l *Ledger) ListDatabases(ctx context.Context) ([]*ledger.Database, error) {
	items, err := l.query(ctx, kindDatabase, "", names(attrVersion, attrBody), nil, "#version, #body")
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	out := make([]*ledger.Database, 0, len(items))
	for _, item := range items {
		d, err := decodeDatabase(item)
		if err != nil {
			return nil, fmt.Errorf("listing databases: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}
