package dynamodb

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
)

// updateItem encodes u as stored at version, like migrationItem: the body
// carries the new version, and the queried fields are copied out of it so
// filters can see them.
func updateItem(u *ledger.Update, version int64) (map[string]types.AttributeValue, error) {
	c := *u
	c.Version = version
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	item := key(kindUpdate, u.ID)
	item[attrVersion] = num(version)
	item[attrBody] = str(string(body))
	item[attrGroup] = str(u.Group)
	item[attrTerminal] = &types.AttributeValueMemberBOOL{Value: u.State.Terminal()}
	return item, nil
}

func decodeUpdate(item map[string]types.AttributeValue) (*ledger.Update, error) {
	u := new(ledger.Update)
	v, err := decodeRecord(item, u)
	if err != nil {
		return nil, err
	}
	u.Version = v
	return u, nil
}

// CreateUpdate implements ledger.Ledger.
func (l *Ledger) CreateUpdate(ctx context.Context, u *ledger.Update) error {
	item, err := updateItem(u, 1)
	if err != nil {
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	if err := l.create(ctx, item, ledger.ErrExists); err != nil {
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	u.Version = 1
	return nil
}

// GetUpdate implements ledger.Ledger.
func (l *Ledger) GetUpdate(ctx context.Context, id string) (*ledger.Update, error) {
	item, err := l.getItem(ctx, kindUpdate, id)
	if err == nil && item == nil {
		err = ledger.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("getting update %s: %w", id, err)
	}
	u, err := decodeUpdate(item)
	if err != nil {
		return nil, fmt.Errorf("getting update %s: %w", id, err)
	}
	return u, nil
}

// SaveUpdate implements ledger.Ledger.
func (l *Ledger) SaveUpdate(ctx context.Context, u *ledger.Update) error {
	next := u.Version + 1
	item, err := updateItem(u, next)
	if err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	if err := l.replace(ctx, kindUpdate, u.ID, item, u.Version); err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	u.Version = next
	return nil
}

// ListUpdates implements ledger.Ledger.
func (l *Ledger) ListUpdates(ctx context.Context, q ledger.UpdateQuery) ([]*ledger.Update, error) {
	var conds []string
	attrNames := names(attrVersion, attrBody)
	values := map[string]types.AttributeValue{}
	if q.Unfinished {
		conds = append(conds, "#terminal = :false")
		attrNames["#"+attrTerminal] = attrTerminal
		values[":false"] = &types.AttributeValueMemberBOOL{Value: false}
	}
	if q.Group != "" {
		conds = append(conds, "#group = :group")
		attrNames["#"+attrGroup] = attrGroup
		values[":group"] = str(q.Group)
	}
	items, err := l.query(ctx, kindUpdate, strings.Join(conds, " AND "), attrNames, values, "#version, #body")
	if err != nil {
		return nil, fmt.Errorf("listing updates: %w", err)
	}
	out := make([]*ledger.Update, 0, len(items))
	for _, item := range items {
		u, err := decodeUpdate(item)
		if err != nil {
			return nil, fmt.Errorf("listing updates: %w", err)
		}
		out = append(out, u)
	}
	// The partition is in id order; the contract is creation order.
	slices.SortFunc(out, func(a, b *ledger.Update) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}
