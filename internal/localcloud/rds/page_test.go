package rds

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPageItems: pages follow identifier order, skip what keep refuses,
// and their markers chain until a last page without one.
func TestPageItems(t *testing.T) {
	m := map[string]int{}
	for i := range 45 {
		m["db-"+strconv.Itoa(100+i)] = i
	}
	odd := func(_ string, v int) bool { return v%2 == 1 } // 22 items
	var got []int
	after, pages := "", 0
	for {
		items, marker := pageItems(m, after, 20, odd, func(v int) int { return v })
		got = append(got, items...)
		pages++
		if marker == "" {
			break
		}
		next, ok := strings.CutPrefix(marker, markerPrefix)
		if !ok || pages > 5 {
			t.Fatalf("marker %q after page %d", marker, pages)
		}
		after = next
	}
	var want []int
	for i := 1; i < 45; i += 2 {
		want = append(want, i)
	}
	if pages != 2 || !slices.Equal(got, want) {
		t.Errorf("%d pages of %v, want 2 pages of %v", pages, got, want)
	}
	if items, marker := pageItems(map[string]int{}, "", 20, odd, func(v int) int { return v }); len(items) != 0 || items == nil || marker != "" {
		t.Errorf("empty map: %v %q, want an empty (not nil) page and no marker", items, marker)
	}
}
