package dynamodb_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/testenv/dynalitetest"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

// newTable creates a fresh ledger table on the emulator.
func newTable(t *testing.T) string {
	t.Helper()
	table := dynalitetest.Table(t)
	if err := ddbledger.CreateTable(t.Context(), dynalitetest.Client(t), table, nil); err != nil {
		t.Fatal(err)
	}
	return table
}

func open(t *testing.T, api ddbledger.API, table string) *ledger.Records {
	t.Helper()
	l, err := ddbledger.Open(t.Context(), api, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		return open(t, dynalitetest.Client(t), newTable(t))
	})
}

// TestConformancePaged runs the suite again with two items per Query page,
// so every list and prune goes through LastEvaluatedKey.
func TestConformancePaged(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		l := open(t, dynalitetest.Client(t), newTable(t))
		ddbledger.SetPageLimit(l.Store().(*ddbledger.Store), 2)
		return l
	})
}

// TestSharedTable stands in for several controllers: separate clients (and
// so separate connection pools) on one table, so racing writes meet only in
// the emulator.
func TestSharedTable(t *testing.T) {
	table := newTable(t)
	ledgertest.RunShared(t,
		open(t, dynalitetest.Client(t), table),
		open(t, dynalitetest.Client(t), table),
		open(t, dynalitetest.Client(t), table))
}

// TestPagesOverOneMegabyte lists more than DynamoDB returns in one page
// (1 MB) without a Limit, as production would.
func TestPagesOverOneMegabyte(t *testing.T) {
	ctx := t.Context()
	fake := &fakeAPI{Real: dynalitetest.Client(t)}
	l := open(t, fake, newTable(t))
	const n, size = 14, 100 << 10 // 1.4 MB in all
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		// Created in the reverse of id order, to show the sort.
		m := &ledger.Migration{ID: fmt.Sprintf("m-%02d", i), Database: "db", State: ledger.Launching,
			CreatedAt: base.Add(time.Duration(n-i) * time.Second), LastError: strings.Repeat("x", size)}
		if i%2 == 1 {
			m.State = ledger.Committed
		}
		if err := l.CreateMigration(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := l.MarkEvent(ctx, fmt.Sprintf("e-%02d", i), base, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	fake.Reset()
	all, err := l.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n || all[0].ID != fmt.Sprintf("m-%02d", n-1) || all[n-1].ID != "m-00" {
		t.Fatalf("listed %d migrations, first %s: want %d in creation order", len(all), all[0].ID, n)
	}
	if q := fake.CallCount("Query"); q < 2 {
		t.Errorf("listing %d KB took %d Query call(s): the emulator did not page", n*size>>10, q)
	}
	unfinished, err := l.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true, Database: "db"})
	if err != nil || len(unfinished) != n/2 {
		t.Fatalf("unfinished: %d migrations, %v; want %d", len(unfinished), err, n/2)
	}
	pruned, err := l.PruneEvents(ctx, base.Add(time.Minute))
	if err != nil || pruned != n {
		t.Fatalf("PruneEvents = %d, %v; want %d", pruned, err, n)
	}
}

// TestTooLarge: a record over DynamoDB's 400 KB item limit fails with an
// error that says so, and matches no ledger sentinel a caller would act on.
func TestTooLarge(t *testing.T) {
	l := open(t, dynalitetest.Client(t), newTable(t))
	m := &ledger.Migration{ID: "big", State: ledger.Launching, LastError: strings.Repeat("x", 500<<10)}
	err := l.CreateMigration(t.Context(), m)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("creating a 500 KB migration: %v, want an error saying it is too large", err)
	}
	for _, s := range []error{ledger.ErrExists, ledger.ErrConflict, ledger.ErrNotFound} {
		if errors.Is(err, s) {
			t.Errorf("error %v matches %v", err, s)
		}
	}
	if m.Version != 0 {
		t.Errorf("failed create set Version to %d", m.Version)
	}
}

// TestEventTTLAttribute: events carry expires_at in whole seconds rounded
// up, and leases carry none (TTL would delete them and lose the token).
func TestEventTTLAttribute(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := newTable(t)
	l := open(t, client, table)
	expires := time.Unix(1_700_000_000, 1)
	if _, err := l.MarkEvent(ctx, "e", expires.Add(-time.Hour), expires); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AcquireLease(ctx, "lease", "A", expires, time.Minute); err != nil {
		t.Fatal(err)
	}
	event := rawItem(t, client, table, "event", "e")
	if got := numAttr(event, "expires_at"); got != "1700000001" {
		t.Errorf("event expires_at = %q, want 1700000001", got)
	}
	if _, ok := rawItem(t, client, table, "lease", "lease")["expires_at"]; ok {
		t.Errorf("lease item has the TTL attribute expires_at")
	}
}
