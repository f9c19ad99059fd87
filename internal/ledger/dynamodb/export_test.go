package dynamodb

// SetPageLimit caps l's Query pages at n items, so that tests page through
// a partition with a handful of records.
func SetPageLimit(l *Ledger, n int32) { l.pageLimit = n }
