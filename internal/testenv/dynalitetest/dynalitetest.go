// Package dynalitetest runs a real, throwaway DynamoDB emulator (dynalite,
// from npm) for tests and hands each test a fresh table name on it.
//
// One in-memory server is shared by the whole test binary, listening on a
// free loopback port only, and Main stops it when the tests end — so a
// package that calls Start must run its tests through Main:
//
//	func TestMain(m *testing.M) { dynalitetest.Main(m) }
//
// dynalite is looked for under the user cache directory
// ($XDG_CACHE_HOME or ~/.cache)/handover/dynalite-<Version>, where
// scripts/deps.sh installs it; if it is missing, the first test that needs
// it installs it there with npm. Without npm the tests fail, saying to run
// `make deps`; HANDOVER_SKIP_DYNAMODB=1 skips them instead. This package
// must never be imported outside tests, and never touches a server it did
// not start.
package dynalitetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// SkipEnv names the environment variable that, set to 1, skips every test
// that needs the emulator.
const SkipEnv = "HANDOVER_SKIP_DYNAMODB"

// Region is the region the clients of Client use; dynalite ignores it.
const Region = "us-east-1"

// shared is the one server of this test binary.
var shared = &testenv.Shared[*server]{Name: "dynalitetest", What: "the DynamoDB emulator", SkipEnv: SkipEnv, Start: startServer}

// Main runs the package's tests, then stops the shared server if one was
// started. Call it from TestMain; it does not return.
func Main(m *testing.M) { shared.Main(m) }

// Start returns the endpoint URL (http://127.0.0.1:PORT) of the shared
// server, installing dynalite and starting the server on first use. Safe
// for parallel tests.
func Start(t testing.TB) (endpoint string) {
	t.Helper()
	srv := shared.Get(t)
	return srv.endpoint()
}

// Credentials are the static keys Client signs with. dynalite checks that
// requests are signed, not by whom; tests that go through the standard
// credential chain can set them in the environment.
var Credentials = aws.Credentials{AccessKeyID: "handover-test", SecretAccessKey: "handover-test", Source: "dynalitetest"}

// Client returns a DynamoDB client for the shared server (starting it if
// needed), with static credentials so that the SDK never looks for real
// ones.
func Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	endpoint := Start(t)
	return dynamodb.NewFromConfig(aws.Config{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(
			Credentials.AccessKeyID, Credentials.SecretAccessKey, ""),
	})
}

// Table returns a table name no other test uses. The table is not created
// (creating it is the code under test's job); if it exists when t ends, it
// is deleted, to keep a long run's memory flat.
func Table(t testing.TB) string {
	t.Helper()
	c := Client(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Not found is the usual answer for a test that never created it.
		_, _ = c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}
