// Package controller holds the controller event-throughput benchmarks of
// bench/README.md (item 4 of the benchmarks issue): events per second
// through decode, dedup, the ledger's compare-and-set and the next action,
// on the in-memory fake cloud, for SQLite with one controller and for
// PostgreSQL with 1, 2 and 4 controllers sharing one ledger.
//
// Everything lives in _test.go files: the package is never imported, and its
// only test is a fast check that the event script drives every handover to
// Committed, so `make test` stays quick. It must never assert a timing.
package controller
