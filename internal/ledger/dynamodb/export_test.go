package dynamodb

// SetPageLimit caps s's Query pages at n items, so that tests page through
// a partition with a handful of records.
func SetPageLimit(s *Store, n int32) { s.pageLimit = n }
