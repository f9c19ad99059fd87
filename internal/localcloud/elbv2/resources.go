package elbv2

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// What loadbalancers.go, targetgroups.go and listeners.go share. Their
// methods take s.mu, validate, mutate, snapshot, and persist after
// unlocking (mutate); they return copies, never the live records.

// names: 1-32 alphanumerics or hyphens, no hyphen first or last.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Service) arn(resource string) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:%s", s.cfg.Region, s.cfg.AccountID, resource)
}

// mutate runs fn under s.mu and persists the result if fn succeeded.
func (s *Service) mutate(fn func() error) error {
	s.mu.Lock()
	if err := fn(); err != nil {
		s.mu.Unlock()
		return err
	}
	snap := s.snapshotLocked()
	s.mu.Unlock()
	return s.persist(snap)
}

// page is one page of a Describe* answer.
type page[T any] struct {
	Items      []T
	NextMarker string
}

// paginate cuts items (sorted by seq) at marker, pageSize at a time. A
// marker is the seq of the first item of the next page.
func paginate[T any](items []T, seq func(T) int64, marker string, pageSize int) (page[T], error) {
	if pageSize == 0 {
		pageSize = 400
	}
	if pageSize < 1 || pageSize > 400 {
		return page[T]{}, errValidation("Page size must be between 1 and 400")
	}
	start := 0
	if marker != "" {
		from, err := strconv.ParseInt(marker, 10, 64)
		if err != nil || from < 1 {
			return page[T]{}, errValidation("Invalid marker '%s'", marker)
		}
		start = sort.Search(len(items), func(i int) bool { return seq(items[i]) >= from })
	}
	end := min(start+pageSize, len(items))
	p := page[T]{Items: items[start:end]}
	if end < len(items) {
		p.NextMarker = strconv.FormatInt(seq(items[end]), 10)
	}
	return p, nil
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
