package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
)

// reservedPartitions are the pk values this package keeps for itself: a
// kind of that name would share their partition.
var reservedPartitions = map[string]bool{kindEvent: true, kindLease: true, kindMeta: true}

// reservedAttrs are the attributes of a record item that an indexed key
// must not be named after. expires_at would also let TTL delete the record.
var reservedAttrs = map[string]bool{
	attrPK: true, attrSK: true, attrVersion: true, attrBody: true, attrTerminal: true, attrTTL: true,
}

// checkKind refuses a kind whose name or keys would collide with this
// package's own partitions and attributes.
func checkKind(k *ledger.Kind) error {
	if k == nil || k.Name == "" {
		return errors.New("record without a kind")
	}
	if reservedPartitions[k.Name] {
		return fmt.Errorf("kind name %q is reserved by the dynamodb ledger", k.Name)
	}
	for _, name := range k.Keys {
		if name == "" || reservedAttrs[name] {
			return fmt.Errorf("%s records cannot have an indexed key named %q in the dynamodb ledger", k.Name, name)
		}
	}
	return nil
}

// recordItem encodes r as stored at version. Every declared key is stored,
// "" when unset, and terminal always: older handovers filter on both.
func recordItem(r ledger.Record, version int64) map[string]types.AttributeValue {
	item := key(r.Kind.Name, r.ID)
	item[attrVersion] = num(version)
	item[attrBody] = str(string(r.Body))
	for i, name := range r.Kind.Keys {
		item[name] = str(r.KeyValue(i))
	}
	item[attrTerminal] = &types.AttributeValueMemberBOOL{Value: r.Done}
	return item
}

// decodeItem reads the item of kind with sort key id. A missing key
// attribute reads as "" (a key appended to the kind after the item was
// written), a missing terminal as not done (database items written before
// terminal was stored on every kind); any other missing or mistyped
// attribute is corruption, never a reason to guess.
func decodeItem(kind *ledger.Kind, id string, item map[string]types.AttributeValue) (ledger.Record, error) {
	version, err := getInt(item, attrVersion)
	if err != nil {
		return ledger.Record{}, err
	}
	body, err := getS(item, attrBody)
	if err != nil {
		return ledger.Record{}, err
	}
	r := ledger.Record{Kind: kind, ID: id, Version: version, Body: []byte(body)}
	if len(kind.Keys) > 0 {
		r.Keys = make([]string, len(kind.Keys))
	}
	for i, name := range kind.Keys {
		if _, ok := item[name]; !ok {
			continue
		}
		if r.Keys[i], err = getS(item, name); err != nil {
			return ledger.Record{}, err
		}
	}
	if v, ok := item[attrTerminal]; ok {
		b, ok := v.(*types.AttributeValueMemberBOOL)
		if !ok {
			return ledger.Record{}, fmt.Errorf("stored item has no boolean attribute %s", attrTerminal)
		}
		r.Done = b.Value
	}
	return r, nil
}

// Create implements ledger.Store.
func (s *Store) Create(ctx context.Context, r ledger.Record) error {
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	if err := checkKind(r.Kind); err != nil {
		return err
	}
	item := recordItem(r, 1)
	return s.write(ledger.ErrExists, func(opt func(*dynamodb.Options)) error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: names(attrPK),
		}, opt)
		return err
	})
}

// Get implements ledger.Store.
func (s *Store) Get(ctx context.Context, kind *ledger.Kind, id string) (ledger.Record, error) {
	if err := checkKind(kind); err != nil {
		return ledger.Record{}, err
	}
	if id == "" {
		// DynamoDB refuses an empty sort key; no record has one.
		return ledger.Record{}, ledger.ErrNotFound
	}
	item, err := s.getItem(ctx, kind.Name, id)
	if err != nil {
		return ledger.Record{}, err
	}
	if item == nil {
		return ledger.Record{}, ledger.ErrNotFound
	}
	return decodeItem(kind, id, item)
}

// Swap implements ledger.Store. When the condition fails, a second,
// consistent read tells ErrNotFound from a conflict. Records are never
// deleted, so an item present now was present when the write was refused.
// r.SameKeys is of no use here: the put replaces the whole item, and there
// is no index to spare.
func (s *Store) Swap(ctx context.Context, r ledger.Record) error {
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	if err := checkKind(r.Kind); err != nil {
		return err
	}
	item := recordItem(r, r.Version+1)
	err := s.write(nil, func(opt func(*dynamodb.Options)) error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 aws.String(s.table),
			Item:                      item,
			ConditionExpression:       aws.String("#version = :v"),
			ExpressionAttributeNames:  names(attrVersion),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(r.Version)},
		}, opt)
		return err
	})
	if !errors.Is(err, errCondition) {
		return err
	}
	stored, err := s.getItem(ctx, r.Kind.Name, r.ID, attrVersion)
	switch {
	case err != nil:
		return fmt.Errorf("checking why the write was refused: %w", err)
	case stored == nil:
		return ledger.ErrNotFound
	}
	have, err := getInt(stored, attrVersion)
	if err != nil {
		return fmt.Errorf("checking why the write was refused: %w", err)
	}
	return &ledger.ConflictError{Kind: r.Kind.Name, ID: r.ID, Version: r.Version, Stored: have}
}

// List implements ledger.Store: one Query on the kind's partition, filtered
// in DynamoDB. DynamoDB orders string sort keys by their UTF-8 bytes, which
// is Go's string order, so the Query's order is the contract's.
func (s *Store) List(ctx context.Context, kind *ledger.Kind, f ledger.Filter) ([]ledger.Record, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	k, err := ledger.CheckFilter(kind, f)
	if err != nil {
		return nil, err
	}
	var conds []string
	attrNames := map[string]string{}
	values := map[string]types.AttributeValue{}
	if f.Unfinished {
		conds = append(conds, "(attribute_not_exists(#terminal) OR #terminal = :false)")
		attrNames["#terminal"] = attrTerminal
		values[":false"] = &types.AttributeValueMemberBOOL{Value: false}
	}
	if k >= 0 {
		// Positional placeholders: a key's name need not be a valid one.
		ph := "#k" + strconv.Itoa(k)
		attrNames[ph] = kind.Keys[k]
		values[":value"] = str(f.Value)
		cond := ph + " = :value"
		if f.Value == "" {
			// An item written before the key was declared has no attribute,
			// and its value is "".
			cond = "(attribute_not_exists(" + ph + ") OR " + cond + ")"
		}
		conds = append(conds, cond)
	}
	items, err := s.query(ctx, kind.Name, strings.Join(conds, " AND "), attrNames, values, "")
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Record, 0, len(items))
	for _, item := range items {
		id, err := getS(item, attrSK)
		if err != nil {
			return nil, err
		}
		r, err := decodeItem(kind, id, item)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind.Name, id, err)
		}
		out = append(out, r)
	}
	return out, nil
}
