package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// errNoRow marks a conditional write that matched nothing; callers turn it
// into the sentinel that fits.
var errNoRow = errors.New("no row changed")

func changedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return errNoRow
	}
	return nil
}

// timeLayout is fixed width with nanoseconds in UTC, so the text sorts
// bytewise in time order and round-trips exactly.
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

func parseTimeKey(s string) (time.Time, error) {
	return time.Parse(timeLayout, s)
}

type migrationCols struct {
	state     string
	terminal  bool
	createdAt string
}

// migrationRow encodes m as stored at version: the JSON body carries the
// new version so that it always agrees with the column.
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

type scanner interface{ Scan(dest ...any) error }

func scanMigration(row scanner) (*ledger.Migration, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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

func scanDatabase(row scanner) (*ledger.Database, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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
