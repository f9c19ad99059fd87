package dynamodb_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/ledger"
	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
	"github.com/handover-dev/handover/internal/testenv/dynalitetest"
)

func avS(v string) types.AttributeValue  { return &types.AttributeValueMemberS{Value: v} }
func avN(v string) types.AttributeValue  { return &types.AttributeValueMemberN{Value: v} }
func avBool(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

func putRaw(t *testing.T, client *dynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func kindNamed(t *testing.T, name string) *ledger.Kind {
	t.Helper()
	for _, k := range ledger.Kinds() {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("no kind %q declared", name)
	return nil
}

// attrNames lists an item's attributes, sorted.
func attrNames(item map[string]types.AttributeValue) []string {
	return slices.Sorted(maps.Keys(item))
}

// TestReadsOldItems: a table written by the code before ledger.Store (one
// hand-written encoder per kind, no schema item) is read unchanged, and
// records saved over it keep the attribute set that code wrote, so that it
// can still read them.
func TestReadsOldItems(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := newTable(t)
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)

	// Exactly as the old migrationItem, databaseItem and updateItem wrote
	// them: the body carries the item's version.
	running := &ledger.Migration{ID: "m-1", Database: "orders", Instance: "i-1", State: ledger.AwaitingHealth, Version: 3, CreatedAt: created}
	done := &ledger.Migration{ID: "m-2", State: ledger.Committed, Version: 7, CreatedAt: created.Add(time.Second)}
	orders := &ledger.Database{ID: "orders", Volume: "vol-1", Epoch: 4, Version: 2}
	update := &ledger.Update{ID: "u-1", Group: "asg", State: ledger.UpdateRunning, Version: 5, CreatedAt: created}
	finished := &ledger.Update{ID: "u-2", Group: "asg", State: ledger.UpdateSucceeded, Version: 1, CreatedAt: created.Add(time.Second)}
	for _, m := range []*ledger.Migration{running, done} {
		putRaw(t, client, table, map[string]types.AttributeValue{
			"pk": avS("migration"), "sk": avS(m.ID), "version": avN(strconv.FormatInt(m.Version, 10)), "body": avS(jsonBody(t, m)),
			"database": avS(m.Database), "instance": avS(m.Instance), "terminal": avBool(m.State.Terminal()),
		})
	}
	putRaw(t, client, table, map[string]types.AttributeValue{
		"pk": avS("database"), "sk": avS(orders.ID), "version": avN("2"), "body": avS(jsonBody(t, orders)),
	})
	for _, u := range []*ledger.Update{update, finished} {
		putRaw(t, client, table, map[string]types.AttributeValue{
			"pk": avS("update"), "sk": avS(u.ID), "version": avN(strconv.FormatInt(u.Version, 10)), "body": avS(jsonBody(t, u)),
			"group": avS(u.Group), "terminal": avBool(u.State.Terminal()),
		})
	}

	l := open(t, client, table)
	same := func(what string, got, want any) {
		t.Helper()
		if g, w := jsonBody(t, got), jsonBody(t, want); g != w {
			t.Errorf("%s:\n got %s\nwant %s", what, g, w)
		}
	}
	m, err := l.GetMigration(ctx, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	same("GetMigration", m, running)
	ms, err := l.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		t.Fatal(err)
	}
	same("unfinished migrations", ms, []*ledger.Migration{running})
	ms, err = l.ListMigrations(ctx, ledger.MigrationQuery{Database: "orders", Instance: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	same("migrations of orders on i-1", ms, []*ledger.Migration{running})
	ms, err = l.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		t.Fatal(err)
	}
	same("all migrations", ms, []*ledger.Migration{running, done})
	d, err := l.GetDatabase(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	same("GetDatabase", d, orders)
	ds, err := l.ListDatabases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same("ListDatabases", ds, []*ledger.Database{orders})
	us, err := l.ListUpdates(ctx, ledger.UpdateQuery{Unfinished: true, Group: "asg"})
	if err != nil {
		t.Fatal(err)
	}
	same("unfinished updates of asg", us, []*ledger.Update{update})

	// A database item has no terminal attribute: it counts as unfinished.
	st := l.Store()
	rs, err := st.List(ctx, kindNamed(t, "database"), ledger.Filter{Unfinished: true})
	if err != nil || len(rs) != 1 || rs[0].ID != "orders" || rs[0].Done {
		t.Errorf("unfinished databases = %+v, %v; want orders, not done", rs, err)
	}
	r, err := st.Get(ctx, kindNamed(t, "migration"), "m-1")
	if err != nil || r.Version != 3 || !slices.Equal(r.Keys, []string{"orders", "i-1"}) || r.Done {
		t.Errorf("Get(migration m-1) = %+v, %v; want version 3, keys [orders i-1], not done", r, err)
	}

	// Saved again, the items keep the attributes the old code wrote (and a
	// database gains terminal, which the old code never read).
	running.State = ledger.Committed
	if err := l.SaveMigration(ctx, running); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, client, table, "migration", "m-1")
	if got, want := attrNames(item), []string{"body", "database", "instance", "pk", "sk", "terminal", "version"}; !slices.Equal(got, want) {
		t.Errorf("saved migration attributes %v, want %v", got, want)
	}
	if numAttr(item, "version") != "4" || !item["terminal"].(*types.AttributeValueMemberBOOL).Value {
		t.Errorf("saved migration item %v: want version 4 and terminal", item)
	}
	if err := l.SaveDatabase(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if got, want := attrNames(rawItem(t, client, table, "database", "orders")), []string{"body", "pk", "sk", "terminal", "version"}; !slices.Equal(got, want) {
		t.Errorf("saved database attributes %v, want %v", got, want)
	}
	update.State = ledger.UpdateFailed
	if err := l.SaveUpdate(ctx, update); err != nil {
		t.Fatal(err)
	}
	if got, want := attrNames(rawItem(t, client, table, "update", "u-1")), []string{"body", "group", "pk", "sk", "terminal", "version"}; !slices.Equal(got, want) {
		t.Errorf("saved update attributes %v, want %v", got, want)
	}
	// The old code decoded the body alone: it must carry the new version.
	var body ledger.Migration
	if err := json.Unmarshal([]byte(item["body"].(*types.AttributeValueMemberS).Value), &body); err != nil || body.Version != 4 {
		t.Errorf("saved migration body at version %d, %v; want 4", body.Version, err)
	}
}

// TestGenericItems: a kind the package has never heard of is stored with
// the same layout, one attribute per declared key ("" when unset) and none
// for a kind without keys.
func TestGenericItems(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := newTable(t)
	st := open(t, client, table).Store()
	plain := &ledger.Kind{Name: "widget"}
	keyed := &ledger.Kind{Name: "gadget", Keys: []string{"colour", "size"}}
	for _, r := range []ledger.Record{
		{Kind: plain, ID: "w", Body: []byte(`{"a":1}`), Done: true},
		{Kind: keyed, ID: "g-1", Keys: []string{"red"}, Body: []byte(`{}`)},
		{Kind: keyed, ID: "g-2", Keys: []string{"red", "xl"}, Body: []byte(`{}`)},
	} {
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	w := rawItem(t, client, table, "widget", "w")
	if got, want := attrNames(w), []string{"body", "pk", "sk", "terminal", "version"}; !slices.Equal(got, want) {
		t.Errorf("widget attributes %v, want %v", got, want)
	}
	g := rawItem(t, client, table, "gadget", "g-1")
	if got, want := attrNames(g), []string{"body", "colour", "pk", "size", "sk", "terminal", "version"}; !slices.Equal(got, want) {
		t.Errorf("gadget attributes %v, want %v", got, want)
	}
	if v, ok := g["size"].(*types.AttributeValueMemberS); !ok || v.Value != "" {
		t.Errorf("unset key stored as %v, want the empty string", g["size"])
	}
	for _, tc := range []struct {
		f    ledger.Filter
		want []string
	}{
		{ledger.Filter{Key: "colour", Value: "red"}, []string{"g-1", "g-2"}},
		{ledger.Filter{Key: "size", Value: "xl"}, []string{"g-2"}},
		{ledger.Filter{Key: "size", Value: ""}, []string{"g-1"}},
		{ledger.Filter{Unfinished: true, Key: "colour", Value: "blue"}, nil},
	} {
		rs, err := st.List(ctx, keyed, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("List(%+v) = %v, want %v", tc.f, ids, tc.want)
		}
	}
	rs, err := st.List(ctx, plain, ledger.Filter{Unfinished: true})
	if err != nil || len(rs) != 0 {
		t.Errorf("unfinished widgets = %v, %v; want none (w is done)", rs, err)
	}
}

// TestReservedKinds: a kind that would share the package's own partitions
// or attributes is refused, not stored among them.
func TestReservedKinds(t *testing.T) {
	st := open(t, dynalitetest.Client(t), newTable(t)).Store()
	for _, k := range []*ledger.Kind{
		{Name: "event"}, {Name: "lease"}, {Name: "meta"},
		{Name: "x", Keys: []string{"version"}}, {Name: "x", Keys: []string{"expires_at"}}, {Name: "x", Keys: []string{"terminal"}},
	} {
		if err := st.Create(t.Context(), ledger.Record{Kind: k, ID: "a", Body: []byte(`{}`)}); err == nil {
			t.Errorf("Create of kind %+v succeeded", k)
		}
		if _, err := st.List(t.Context(), k, ledger.Filter{}); err == nil {
			t.Errorf("List of kind %+v succeeded", k)
		}
	}
}

// TestSchemaVersion: Open records version 1 in a table without one (also
// when several controllers open it at once), and refuses a table recorded
// by a newer handover.
func TestSchemaVersion(t *testing.T) {
	ctx := t.Context()
	client := dynalitetest.Client(t)
	table := newTable(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = ddbledger.Open(ctx, client, table, nil) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open of a fresh table: %v", err)
		}
	}
	l := open(t, client, table)
	if got := numAttr(rawItem(t, client, table, "meta", "schema"), "version"); got != "1" {
		t.Errorf("recorded schema version %q, want 1", got)
	}
	if v, err := l.Store().SchemaVersion(ctx); err != nil || v != 1 {
		t.Errorf("SchemaVersion = %d, %v; want 1", v, err)
	}
	open(t, client, table) // a second Open finds it

	putRaw(t, client, table, map[string]types.AttributeValue{"pk": avS("meta"), "sk": avS("schema"), "version": avN("2")})
	_, err := ddbledger.Open(ctx, client, table, nil)
	if err == nil || !strings.Contains(err.Error(), "upgrade handover") || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Open of a schema 2 table: %v, want an error saying to upgrade handover", err)
	}
	putRaw(t, client, table, map[string]types.AttributeValue{"pk": avS("meta"), "sk": avS("schema"), "version": avS("one")})
	if _, err := ddbledger.Open(ctx, client, table, nil); err == nil {
		t.Error("Open of a table with a corrupt schema version succeeded")
	}
}
