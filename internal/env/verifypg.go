package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PGTables is TableSummer over PostgreSQL, logging in with Password (an
// RDS instance restored from a snapshot keeps its source's master
// password). Each table's checksum is the SHA-256 of the md5 of each row's
// text, in primary-key order (the row's text order for a table without
// one), streamed: no table is held in memory, on the server or here.
type PGTables struct {
	Password string
	// SSLMode is libpq's sslmode; "" is prefer.
	SSLMode string
}

var _ TableSummer = PGTables{}

// tablesQuery lists every ordinary table outside the system schemas with
// the columns of its primary key, in key order.
const tablesQuery = `
SELECT n.nspname, c.relname,
       coalesce((SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY 1, 2`

// TableSums implements TableSummer.
func (p PGTables) TableSums(ctx context.Context, endpoint, user, database string) ([]TableSum, error) {
	conn, err := pgConnect(ctx, endpoint, user, p.Password, p.SSLMode, database)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	// One snapshot for every table: DST may be taking writes.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("beginning a read-only transaction on %s: %w", endpoint, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, tablesQuery)
	if err != nil {
		return nil, fmt.Errorf("listing the tables of %s: %w", endpoint, err)
	}
	type table struct{ schema, name, key string }
	var tables []table
	for rows.Next() {
		var t table
		if err := rows.Scan(&t.schema, &t.name, &t.key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing the tables of %s: %w", endpoint, err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the tables of %s: %w", endpoint, err)
	}
	out := make([]TableSum, 0, len(tables))
	for _, t := range tables {
		name := pgx.Identifier{t.schema, t.name}.Sanitize()
		order := t.key
		if order == "" {
			order = "t::text"
		}
		rows, err := tx.Query(ctx, "SELECT md5(t::text) FROM ONLY "+name+" AS t ORDER BY "+order)
		if err != nil {
			return nil, fmt.Errorf("summing table %s of %s: %w", name, endpoint, err)
		}
		h := sha256.New()
		var n int64
		var row string
		for rows.Next() {
			if err := rows.Scan(&row); err != nil {
				rows.Close()
				return nil, fmt.Errorf("summing table %s of %s: %w", name, endpoint, err)
			}
			h.Write([]byte(row))
			h.Write([]byte{'\n'})
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("summing table %s of %s: %w", name, endpoint, err)
		}
		out = append(out, TableSum{Table: t.schema + "." + t.name, Rows: n, Sum: "sha256:" + hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}
