package handover

import (
	"slices"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

func TestTouchIndex(t *testing.T) {
	x := newTouchIndex()
	a := &ledger.Migration{ID: "a", State: ledger.Snapshotting, Instance: "i-new", Source: "i-old", SourceVolume: "vol-old", PreCopySnapshot: "snap-pre"}
	b := &ledger.Migration{ID: "b", State: ledger.Launching, Instance: "i-other", Source: "i-old"}
	x.put(a)
	x.put(b)
	tests := []struct {
		name string
		ids  []string
		want []string
	}{
		{"new instance", []string{"i-new"}, []string{"a"}},
		{"shared source", []string{"i-old"}, []string{"a", "b"}},
		{"snapshot", []string{"", "snap-pre", ""}, []string{"a"}},
		{"snapshot and its volume, once", []string{"", "snap-pre", "vol-old"}, []string{"a"}},
		{"unknown", []string{"vol-x"}, nil},
		{"empty", []string{"", "", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := x.lookup(tt.ids...)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("lookup(%v) = %v, want %v", tt.ids, got, tt.want)
			}
		})
	}

	// A step moves a's resources: the old ones no longer find it.
	a.PreCopySnapshot, a.FinalSnapshot = "", "snap-final"
	x.put(a)
	if got := x.lookup("snap-pre"); got != nil {
		t.Errorf("after the update, snap-pre finds %v", got)
	}
	if got := x.lookup("snap-final"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("snap-final finds %v, want [a]", got)
	}
	// An ended migration leaves the index.
	a.State = ledger.Committed
	x.put(a)
	if got := x.lookup("i-new", "snap-final"); got != nil {
		t.Errorf("a committed migration is still found: %v", got)
	}
	if got := x.lookup("i-old"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("i-old finds %v, want [b]", got)
	}
	if len(x.byMig) != 1 || len(x.byRes) != 2 {
		t.Errorf("index keeps %d migrations and %d resources, want 1 and 2", len(x.byMig), len(x.byRes))
	}
}
