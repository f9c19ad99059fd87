package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// timeLayout is fixed width with nanoseconds in UTC, so the text sorts
// bytewise (COLLATE "C") in time order and round-trips exactly. The SQLite
// backend uses the same layout.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// timeKey formats t for a column that is compared or ordered. Years outside
// 1..9999 would break the fixed width, so they are refused.
func timeKey(t time.Time) (string, error) {
	u := t.UTC()
	if y := u.Year(); y < 1 || y > 9999 {
		return "", fmt.Errorf("time %s is outside the years 1 to 9999", t)
	}
	return u.Format(timeLayout), nil
}

func parseTimeKey(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

type migrationCols struct {
	state     string
	terminal  bool
	createdAt string
}

// migrationRow encodes m as stored at version: the JSON body carries the new
// version so that it always agrees with the column.
func migrationRow(m *ledger.Migration, version int64) ([]byte, migrationCols, error) {
	created, err := timeKey(m.CreatedAt)
	if err != nil {
		return nil, migrationCols{}, fmt.Errorf("created at: %w", err)
	}
	c := *m
	c.Version = version
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, migrationCols{}, fmt.Errorf("encoding: %w", err)
	}
	return body, migrationCols{state: m.State.String(), terminal: m.State.Terminal(), createdAt: created}, nil
}

func databaseRow(d *ledger.Database, version int64) ([]byte, string, error) {
	updated, err := timeKey(d.UpdatedAt)
	if err != nil {
		return nil, "", fmt.Errorf("updated at: %w", err)
	}
	c := *d
	c.Version = version
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	return body, updated, nil
}

func scanMigration(row pgx.Row) (*ledger.Migration, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ledger.ErrNotFound
		}
		return nil, err
	}
	m := new(ledger.Migration)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("decoding stored migration: %w", err)
	}
	m.Version = version
	return m, nil
}

func scanDatabase(row pgx.Row) (*ledger.Database, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ledger.ErrNotFound
		}
		return nil, err
	}
	d := new(ledger.Database)
	if err := json.Unmarshal(body, d); err != nil {
		return nil, fmt.Errorf("decoding stored database: %w", err)
	}
	d.Version = version
	return d, nil
}
