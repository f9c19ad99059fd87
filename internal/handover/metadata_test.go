package handover_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
)

func TestParseMetadata(t *testing.T) {
	long := strings.Repeat("d", 129)
	tests := []struct {
		name string
		in   string
		want handover.Metadata
		// errWants are fragments the error must contain: what is wrong and
		// what to do about it.
		errWants []string
		pool     []string // what Pool returns
	}{
		{name: "bare id", in: "orders", want: handover.Metadata{Database: "orders"}},
		{name: "bare id with spaces around", in: "  orders\n", want: handover.Metadata{Database: "orders"}},
		{name: "json object", in: `{"database":"orders"}`, want: handover.Metadata{Database: "orders"}},
		{
			name: "json with seed and size", in: ` {"database":"orders","seed_snapshot":"snap-0abc","size_gib":50} `,
			want: handover.Metadata{Database: "orders", SeedSnapshot: "snap-0abc", SizeGiB: 50},
		},
		{name: "empty", in: "", errWants: []string{"empty", `{"database":"orders"}`}},
		{name: "only spaces", in: "   ", errWants: []string{"empty", "set it to the database id"}},
		{name: "unknown field", in: `{"database":"orders","zone":"a"}`, errWants: []string{`unknown field "zone"`, `expected {"database":"ID"`}},
		{name: "not json", in: `{database: orders}`, errWants: []string{"parsing hook NotificationMetadata", "expected"}},
		{name: "json without database", in: `{"size_gib":5}`, errWants: []string{"names no database", `set "database"`}},
		{name: "bad seed snapshot", in: `{"database":"orders","seed_snapshot":"vol-123"}`, errWants: []string{`seed_snapshot "vol-123"`, "snap-"}},
		{name: "negative size", in: `{"database":"orders","size_gib":-1}`, errWants: []string{"size_gib -1", "positive"}},
		{name: "space inside id", in: "my orders", errWants: []string{`"my orders"`, "without spaces or slashes"}},
		{name: "slash inside id", in: `{"database":"a/b"}`, errWants: []string{`"a/b"`, "without spaces or slashes"}},
		{name: "id too long", in: long, errWants: []string{"1 to 128 characters"}},
		{name: "pool by list", in: `{"databases":["a","b"]}`, want: handover.Metadata{Databases: []string{"a", "b"}}, pool: []string{"a", "b"}},
		{name: "pool by count", in: `{"database":"t","count":3}`, want: handover.Metadata{Database: "t", Count: 3}, pool: []string{"t-1", "t-2", "t-3"}},
		{name: "pool both forms", in: `{"database":"t","databases":["a"]}`, errWants: []string{"use one form"}},
		{name: "pool duplicate", in: `{"databases":["a","a"]}`, errWants: []string{`"a" appears twice`}},
		{name: "pool bad id", in: `{"databases":["a","b c"]}`, errWants: []string{`"b c"`, "without spaces"}},
		{name: "pool count too big", in: `{"database":"t","count":1001}`, errWants: []string{"between 1 and 1000"}},
		{name: "channel only", in: `{"channel":"web"}`, want: handover.Metadata{Channel: "web"}},
		{name: "database and channel", in: `{"database":"orders","channel":"web"}`, want: handover.Metadata{Database: "orders", Channel: "web"}},
		{name: "bad channel", in: `{"channel":"w/b"}`, errWants: []string{`"channel" "w/b"`, "letters, digits"}},
		{name: "channel with state settings", in: `{"channel":"web","size_gib":5}`, errWants: []string{"names no database", `set "database"`}},
		{name: "pool negative count", in: `{"database":"t","count":-1}`, errWants: []string{"between 1 and 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handover.ParseMetadata(tt.in)
			if tt.errWants == nil {
				if err != nil {
					t.Fatalf("ParseMetadata(%q): %v", tt.in, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ParseMetadata(%q) = %+v, want %+v", tt.in, got, tt.want)
				}
				if !reflect.DeepEqual(got.Pool(), tt.pool) {
					t.Fatalf("ParseMetadata(%q).Pool() = %v, want %v", tt.in, got.Pool(), tt.pool)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseMetadata(%q) = %+v, want an error", tt.in, got)
			}
			for _, w := range tt.errWants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestParseLaunchMetadata: a group's handover:channel tag joins it to a
// channel the hook's metadata does not name; the metadata's "channel"
// wins where both are set; a tagged group's hook may have no metadata.
func TestParseLaunchMetadata(t *testing.T) {
	tests := []struct {
		name, in, tag string
		want          handover.Metadata
		errWants      []string
	}{
		{name: "tag only, no metadata", in: "", tag: "web", want: handover.Metadata{Channel: "web"}},
		{name: "tag only, empty object", in: "{}", tag: "web", want: handover.Metadata{Channel: "web"}},
		{name: "tag and a database", in: `{"database":"orders"}`, tag: "web", want: handover.Metadata{Database: "orders", Channel: "web"}},
		{name: "tag and a bare id", in: "orders", tag: "web", want: handover.Metadata{Database: "orders", Channel: "web"}},
		{name: "metadata's channel wins", in: `{"channel":"api"}`, tag: "web", want: handover.Metadata{Channel: "api"}},
		{name: "metadata's channel wins over a bad tag", in: `{"channel":"api"}`, tag: "w b", want: handover.Metadata{Channel: "api"}},
		{name: "no tag", in: `{"database":"orders"}`, want: handover.Metadata{Database: "orders"}},
		{name: "no tag, no metadata", in: "", errWants: []string{"empty"}},
		{name: "bad tag", in: "", tag: "w b", errWants: []string{"group's tag handover:channel", "w b"}},
		{name: "bad tag with a database", in: "orders", tag: "w/b", errWants: []string{"group's tag handover:channel"}},
		{name: "tag does not excuse bad metadata", in: `{"size_gib":-1,"database":"o"}`, tag: "web", errWants: []string{"size_gib -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handover.ParseLaunchMetadata(tt.in, tt.tag)
			if len(tt.errWants) > 0 {
				if err == nil {
					t.Fatalf("ParseLaunchMetadata(%q, %q) = %+v, want an error", tt.in, tt.tag, got)
				}
				for _, w := range tt.errWants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseLaunchMetadata(%q, %q) = %+v, %v; want %+v", tt.in, tt.tag, got, err, tt.want)
			}
		})
	}
}
