// Package pacing holds the fleet-pacing benchmark of bench/README.md (item
// 5 of the benchmarks issue): 1,000 concurrent handovers on the fake cloud
// with EC2's token buckets on the server side, on a simulated clock, timed
// against the bound those buckets impose.
//
// Everything lives in _test.go files: the package is never imported. Its
// test runs a small fleet and asserts that no throttling answer ever became
// a failed migration; it must never assert a timing, simulated or not.
package pacing
