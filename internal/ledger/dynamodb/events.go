package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
)

// EventSeen implements ledger.Store. The expiry is compared here, not
// left to TTL: an expired item may linger for days.
func (s *Store) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	item, err := s.getItem(ctx, kindEvent, id, attrExpiresNS)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	if item == nil {
		return false, nil
	}
	expires, err := getTime(item, attrExpiresNS)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	return now.Before(expires), nil
}

// MarkEvent implements ledger.Store. One conditional put: it writes a new
// id, or replaces a record that had expired at now; for a duplicate the
// condition fails and nothing changes, so the expiry is not extended.
func (s *Store) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	nowN, err := timeNum(now)
	if err != nil {
		return false, fmt.Errorf("marking event %s: now: %w", id, err)
	}
	expN, err := timeNum(expires)
	if err != nil {
		return false, fmt.Errorf("marking event %s: expires: %w", id, err)
	}
	item := key(kindEvent, id)
	item[attrExpiresNS] = expN
	item[attrTTL] = num(ttlSeconds(expires))
	err = s.write(nil, func(opt func(*dynamodb.Options)) error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 aws.String(s.table),
			Item:                      item,
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #expires_ns <= :now"),
			ExpressionAttributeNames:  names(attrPK, attrExpiresNS),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowN},
		}, opt)
		return err
	})
	switch {
	case errors.Is(err, errCondition):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("marking event %s: %w", id, err)
	}
	return true, nil
}

// PruneEvents implements ledger.Store. It finds the expired events with a
// filtered Query, then deletes each under the same condition, so an id
// marked again in between survives and is not counted; nor is one that TTL
// or another pruner deleted first.
func (s *Store) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	nowN, err := timeNum(now)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	expired, err := s.query(ctx, kindEvent, "#expires_ns <= :now",
		names(attrSK, attrExpiresNS), map[string]types.AttributeValue{":now": nowN}, "#sk")
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	n := 0
	for _, item := range expired {
		id, err := getS(item, attrSK)
		if err != nil {
			return n, fmt.Errorf("pruning events: %w", err)
		}
		err = s.write(nil, func(opt func(*dynamodb.Options)) error {
			_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 aws.String(s.table),
				Key:                       key(kindEvent, id),
				ConditionExpression:       aws.String("#expires_ns <= :now"),
				ExpressionAttributeNames:  names(attrExpiresNS),
				ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowN},
			}, opt)
			return err
		})
		switch {
		case errors.Is(err, errCondition):
		case err != nil:
			return n, fmt.Errorf("pruning events: deleting %s: %w", id, err)
		default:
			n++
		}
	}
	return n, nil
}

// acquireAttempts bounds AcquireLease's retries when both of its
// conditional writes lose to concurrent changes; each retry means another
// writer made progress.
const acquireAttempts = 10

// AcquireLease implements ledger.Store with two conditional updates, since
// an update expression cannot choose between keeping and bumping the token:
// a renewal (the holder already has it, expired or not) keeps the token; a
// takeover (absent, released or expired, and held by someone else) adds one
// to it, starting from 1. Each decides atomically on its own; when both
// refuse, a consistent read tells whether another holder has it or the
// lease changed in between, in which case it tries again.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	if holder == "" || ttl <= 0 {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: need a holder and a positive ttl, got holder %q and ttl %s", name, holder, ttl)
	}
	nowN, err := timeNum(now)
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	expN, err := timeNum(now.Add(ttl))
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	values := map[string]types.AttributeValue{":holder": str(holder), ":exp": expN}
	renew := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(kindLease, name),
		UpdateExpression:          aws.String("SET #expires_ns = :exp"),
		ConditionExpression:       aws.String("#holder = :holder"),
		ExpressionAttributeNames:  names(attrHolder, attrExpiresNS),
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	takeover := &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.table),
		Key:              key(kindLease, name),
		UpdateExpression: aws.String("SET #holder = :holder, #expires_ns = :exp ADD #token :one"),
		// A released lease has holder "": free to anyone, and the token
		// still grows.
		ConditionExpression:      aws.String("attribute_not_exists(#pk) OR (#holder <> :holder AND (#holder = :free OR #expires_ns <= :now))"),
		ExpressionAttributeNames: names(attrPK, attrHolder, attrExpiresNS, attrToken),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":holder": str(holder), ":exp": expN, ":now": nowN, ":one": num(1), ":free": str(""),
		},
		ReturnValues: types.ReturnValueAllNew,
	}
	for range acquireAttempts {
		for _, in := range []*dynamodb.UpdateItemInput{renew, takeover} {
			var out *dynamodb.UpdateItemOutput
			err := s.write(nil, func(opt func(*dynamodb.Options)) (err error) {
				out, err = s.api.UpdateItem(ctx, in, opt)
				return err
			})
			switch {
			case errors.Is(err, errCondition):
				continue
			case err != nil:
				return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
			}
			lease, err := decodeLease(name, out.Attributes)
			if err != nil {
				return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
			}
			return lease, nil
		}
		item, err := s.getItem(ctx, kindLease, name)
		if err != nil {
			return ledger.Lease{}, fmt.Errorf("acquiring lease %s: reading the holder: %w", name, err)
		}
		if item == nil {
			continue // cannot happen while leases are never deleted; try again
		}
		cur, err := decodeLease(name, item)
		if err != nil {
			return ledger.Lease{}, fmt.Errorf("acquiring lease %s: reading the holder: %w", name, err)
		}
		if cur.Holder != "" && cur.Holder != holder && now.Before(cur.Expires) {
			return cur, fmt.Errorf("acquiring lease %s for %s: held by %s until %s: %w",
				name, holder, cur.Holder, cur.Expires.Format(time.RFC3339Nano), ledger.ErrLeaseHeld)
		}
		// Released, expired or ours by now: it changed between the writes.
	}
	return ledger.Lease{}, fmt.Errorf("acquiring lease %s for %s: it kept changing under %d attempts", name, holder, acquireAttempts)
}

// ReleaseLease implements ledger.Store. The item stays with an empty
// holder so that the next holder's token is still larger; a lease taken
// over since (or never held) fails the condition, which is not an error.
func (s *Store) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	zero, _ := timeNum(time.Time{})
	err := s.write(nil, func(opt func(*dynamodb.Options)) error {
		_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(s.table),
			Key:                      key(kindLease, lease.Name),
			UpdateExpression:         aws.String("SET #holder = :free, #expires_ns = :zero"),
			ConditionExpression:      aws.String("#holder = :holder AND #token = :token AND #holder <> :free"),
			ExpressionAttributeNames: names(attrHolder, attrExpiresNS, attrToken),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":holder": str(lease.Holder), ":token": num(lease.Token), ":free": str(""), ":zero": zero,
			},
		}, opt)
		return err
	})
	if err != nil && !errors.Is(err, errCondition) {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	return nil
}

// ListLeases implements ledger.Store: one query of the lease partition,
// filtered to the held ones. Sort keys are lease names, so the answer is
// in name order.
func (s *Store) ListLeases(ctx context.Context, now time.Time) ([]ledger.Lease, error) {
	nowN, err := timeNum(now)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	items, err := s.query(ctx, kindLease, "#holder <> :free AND #expires_ns > :now",
		names(attrHolder, attrExpiresNS), map[string]types.AttributeValue{":free": str(""), ":now": nowN}, "")
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	out := make([]ledger.Lease, 0, len(items))
	for _, item := range items {
		name, err := getS(item, attrSK)
		if err != nil {
			return nil, fmt.Errorf("listing leases: %w", err)
		}
		l, err := decodeLease(name, item)
		if err != nil {
			return nil, fmt.Errorf("listing leases: lease %s: %w", name, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func decodeLease(name string, item map[string]types.AttributeValue) (ledger.Lease, error) {
	holder, err := getS(item, attrHolder)
	if err != nil {
		return ledger.Lease{}, err
	}
	token, err := getInt(item, attrToken)
	if err != nil {
		return ledger.Lease{}, err
	}
	expires, err := getTime(item, attrExpiresNS)
	if err != nil {
		return ledger.Lease{}, err
	}
	return ledger.Lease{Name: name, Holder: holder, Token: token, Expires: expires}, nil
}
