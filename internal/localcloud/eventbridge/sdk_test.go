package eventbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/handover-dev/handover/internal/events"
)

func TestRuleLifecycle(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	pattern := `{"source":["my.app"]}`
	put, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("r1"), EventPattern: aws.String(pattern), Description: aws.String("first")})
	if err != nil {
		t.Fatalf("PutRule: %v", err)
	}
	if want := "arn:aws:events:eu-west-1:000000000000:rule/r1"; aws.ToString(put.RuleArn) != want {
		t.Fatalf("RuleArn = %s, want %s", aws.ToString(put.RuleArn), want)
	}
	desc, err := e.ebc.DescribeRule(ctx, &awseb.DescribeRuleInput{Name: aws.String("r1")})
	if err != nil {
		t.Fatalf("DescribeRule: %v", err)
	}
	if aws.ToString(desc.EventPattern) != pattern || desc.State != types.RuleStateEnabled || aws.ToString(desc.Description) != "first" ||
		aws.ToString(desc.EventBusName) != "default" || aws.ToString(desc.Arn) != aws.ToString(put.RuleArn) {
		t.Fatalf("DescribeRule = %+v", desc)
	}
	for _, n := range []string{"r2", "r3", "other"} {
		if _, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String(n), EventPattern: aws.String(pattern)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := e.ebc.ListRules(ctx, &awseb.ListRulesInput{NamePrefix: aws.String("r"), Limit: aws.Int32(2)})
	if err != nil || len(list.Rules) != 2 || list.NextToken == nil || aws.ToString(list.Rules[0].Name) != "r1" {
		t.Fatalf("ListRules page 1 = %+v, %v", list, err)
	}
	list2, err := e.ebc.ListRules(ctx, &awseb.ListRulesInput{NamePrefix: aws.String("r"), Limit: aws.Int32(2), NextToken: list.NextToken})
	if err != nil || len(list2.Rules) != 1 || aws.ToString(list2.Rules[0].Name) != "r3" || list2.NextToken != nil {
		t.Fatalf("ListRules page 2 = %+v, %v", list2, err)
	}

	if _, err := e.ebc.DisableRule(ctx, &awseb.DisableRuleInput{Name: aws.String("r1")}); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.ebc.DescribeRule(ctx, &awseb.DescribeRuleInput{Name: aws.String("r1")}); d.State != types.RuleStateDisabled {
		t.Fatalf("state after DisableRule = %s", d.State)
	}
	if _, err := e.ebc.EnableRule(ctx, &awseb.EnableRuleInput{Name: aws.String("r1")}); err != nil {
		t.Fatal(err)
	}

	_, arn := e.queue(t, "q")
	pt, err := e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r1"), Targets: []types.Target{
		{Id: aws.String("t1"), Arn: aws.String(arn)},
		{Id: aws.String("t2"), Arn: aws.String(arn), InputPath: aws.String("$.detail"), RetryPolicy: &types.RetryPolicy{MaximumRetryAttempts: aws.Int32(3), MaximumEventAgeInSeconds: aws.Int32(600)}},
	}})
	if err != nil || pt.FailedEntryCount != 0 {
		t.Fatalf("PutTargets = %+v, %v", pt, err)
	}
	targets, err := e.ebc.ListTargetsByRule(ctx, &awseb.ListTargetsByRuleInput{Rule: aws.String("r1")})
	if err != nil || len(targets.Targets) != 2 || aws.ToString(targets.Targets[1].InputPath) != "$.detail" ||
		aws.ToInt32(targets.Targets[1].RetryPolicy.MaximumRetryAttempts) != 3 {
		t.Fatalf("ListTargetsByRule = %+v, %v", targets, err)
	}
	names, err := e.ebc.ListRuleNamesByTarget(ctx, &awseb.ListRuleNamesByTargetInput{TargetArn: aws.String(arn)})
	if err != nil || !reflect.DeepEqual(names.RuleNames, []string{"r1"}) {
		t.Fatalf("ListRuleNamesByTarget = %+v, %v", names, err)
	}

	// A rule with targets cannot be deleted, as in AWS.
	_, err = e.ebc.DeleteRule(ctx, &awseb.DeleteRuleInput{Name: aws.String("r1")})
	wantAPIError(t, err, "ValidationException")

	var six []types.Target
	for i := range 6 {
		six = append(six, types.Target{Id: aws.String(fmt.Sprint("x", i)), Arn: aws.String(arn)})
	}
	_, err = e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r2"), Targets: six})
	var limit *types.LimitExceededException
	if !errors.As(err, &limit) {
		t.Fatalf("six targets: err = %v, want LimitExceededException", err)
	}
	_, err = e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r2"), Targets: []types.Target{{Id: aws.String("l"), Arn: aws.String("arn:aws:lambda:eu-west-1:000000000000:function:f")}}})
	wantAPIError(t, err, "ValidationException")

	if _, err := e.ebc.RemoveTargets(ctx, &awseb.RemoveTargetsInput{Rule: aws.String("r1"), Ids: []string{"t1", "t2"}}); err != nil {
		t.Fatalf("RemoveTargets: %v", err)
	}
	if _, err := e.ebc.DeleteRule(ctx, &awseb.DeleteRuleInput{Name: aws.String("r1")}); err != nil {
		t.Fatalf("DeleteRule: %v", err)
	}
	if _, err := e.ebc.DeleteRule(ctx, &awseb.DeleteRuleInput{Name: aws.String("r1")}); err != nil {
		t.Fatalf("DeleteRule again: %v", err)
	}
	_, err = e.ebc.DescribeRule(ctx, &awseb.DescribeRuleInput{Name: aws.String("r1")})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeRule after delete: err = %v, want ResourceNotFoundException", err)
	}
	_, err = e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r1"), Targets: []types.Target{{Id: aws.String("t"), Arn: aws.String(arn)}}})
	if !errors.As(err, &notFound) {
		t.Fatalf("PutTargets on a missing rule: err = %v", err)
	}
}

func TestPutRuleValidation(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	_, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("bad"), EventPattern: aws.String(`{"source": "not-an-array"}`)})
	var invalid *types.InvalidEventPatternException
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "Event pattern is not valid") {
		t.Fatalf("invalid pattern: err = %v, want InvalidEventPatternException", err)
	}
	_, err = e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("none")})
	wantAPIError(t, err, "ValidationException")
	_, err = e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("bad name!"), EventPattern: aws.String(`{"source":["x"]}`)})
	wantAPIError(t, err, "ValidationException")
	_, err = e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("bus"), EventPattern: aws.String(`{"source":["x"]}`), EventBusName: aws.String("custom")})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("custom bus: err = %v", err)
	}
	if _, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("sched"), ScheduleExpression: aws.String("rate(5 minutes)")}); err != nil {
		t.Fatalf("scheduled rule: %v", err)
	}

	res, err := e.ebc.TestEventPattern(ctx, &awseb.TestEventPatternInput{EventPattern: aws.String(`{"detail":{"state":[{"anything-but":"initializing"}]}}`), Event: aws.String(sampleEvent)})
	if err != nil || !res.Result {
		t.Fatalf("TestEventPattern = %+v, %v", res, err)
	}
	_, err = e.ebc.TestEventPattern(ctx, &awseb.TestEventPatternInput{EventPattern: aws.String(`{"source":["x"]}`), Event: aws.String(`{"source":"x"}`)})
	wantAPIError(t, err, "ValidationException")
}

// The envelope EventBridge writes into an SQS message.
type envelopeOut struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func TestPutEventsReachesSQS(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	qurl, arn := e.queue(t, "app-events")
	if _, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("app"),
		EventPattern: aws.String(`{"source":["my.app"],"detail":{"kind":[{"prefix":"order."}],"amount":[{"numeric":[">",10]}]}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("app"), Targets: []types.Target{{Id: aws.String("q"), Arn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2025, 6, 1, 12, 30, 45, 0, time.UTC)
	out, err := e.ebc.PutEvents(ctx, &awseb.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{Source: aws.String("my.app"), DetailType: aws.String("Order Placed"), Detail: aws.String(`{ "kind": "order.placed", "amount": 42, "note": "<&>" }`),
			Resources: []string{"arn:aws:s3:::bucket"}, Time: aws.Time(when)},
		{Source: aws.String("my.app"), DetailType: aws.String("Order Placed"), Detail: aws.String(`{"kind":"order.placed","amount":5}`)},
		{Source: aws.String("my.app"), DetailType: aws.String("No detail")},
		{Source: aws.String("my.app"), DetailType: aws.String("Bad detail"), Detail: aws.String(`[1,2]`)},
	}})
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	if out.FailedEntryCount != 2 || len(out.Entries) != 4 || aws.ToString(out.Entries[0].EventId) == "" ||
		aws.ToString(out.Entries[2].ErrorCode) != "InvalidArgument" || aws.ToString(out.Entries[3].ErrorCode) != "MalformedDetail" {
		t.Fatalf("PutEvents = %+v", out)
	}

	bodies := e.bodies(t, qurl)
	if len(bodies) != 1 {
		t.Fatalf("queue got %d messages, want 1: %q", len(bodies), bodies)
	}
	if !strings.HasPrefix(bodies[0], `{"version":"0","id":"`) {
		t.Errorf("body does not start like EventBridge's: %s", bodies[0])
	}
	var got envelopeOut
	if err := json.Unmarshal([]byte(bodies[0]), &got); err != nil {
		t.Fatalf("body is not an event: %v", err)
	}
	want := envelopeOut{Version: "0", ID: aws.ToString(out.Entries[0].EventId), DetailType: "Order Placed", Source: "my.app",
		Account: "000000000000", Time: "2025-06-01T12:30:45Z", Region: region, Resources: []string{"arn:aws:s3:::bucket"},
		Detail: json.RawMessage(`{"kind":"order.placed","amount":42,"note":"<&>"}`)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delivered event =\n%+v\nwant\n%+v", got, want)
	}

	// Disabled rules deliver nothing.
	if _, err := e.ebc.DisableRule(ctx, &awseb.DisableRuleInput{Name: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ebc.PutEvents(ctx, &awseb.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{Source: aws.String("my.app"), DetailType: aws.String("x"), Detail: aws.String(`{"kind":"order.x","amount":99}`)}}}); err != nil {
		t.Fatal(err)
	}
	if b := e.bodies(t, qurl); len(b) != 0 {
		t.Fatalf("disabled rule delivered %q", b)
	}
}

func TestPutEventsLimits(t *testing.T) {
	e := newEnv(t, Config{})
	var eleven []types.PutEventsRequestEntry
	for range 11 {
		eleven = append(eleven, types.PutEventsRequestEntry{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String("{}")})
	}
	_, err := e.ebc.PutEvents(ctxT(t), &awseb.PutEventsInput{Entries: eleven})
	wantAPIError(t, err, "ValidationException")
	big := `{"x":"` + strings.Repeat("a", 300<<10) + `"}`
	_, err = e.ebc.PutEvents(ctxT(t), &awseb.PutEventsInput{Entries: []types.PutEventsRequestEntry{{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String(big)}}})
	wantAPIError(t, err, "ValidationException")
}

func TestInputAndInputPath(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	whole, wholeARN := e.queue(t, "whole")
	part, partARN := e.queue(t, "part")
	fixed, fixedARN := e.queue(t, "fixed")
	if _, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":["s"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r"), Targets: []types.Target{
		{Id: aws.String("whole"), Arn: aws.String(wholeARN)},
		{Id: aws.String("part"), Arn: aws.String(partARN), InputPath: aws.String("$.detail.inner")},
		{Id: aws.String("fixed"), Arn: aws.String(fixedARN), Input: aws.String(`{"constant":true}`)},
	}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("r"), Targets: []types.Target{
		{Id: aws.String("tx"), Arn: aws.String(fixedARN), InputTransformer: &types.InputTransformer{InputTemplate: aws.String(`"x"`)}}}})
	wantAPIError(t, err, "ValidationException")

	if _, err := e.ebc.PutEvents(ctx, &awseb.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String(`{"inner":{"a":1}}`)}}}); err != nil {
		t.Fatal(err)
	}
	if b := e.bodies(t, whole); len(b) != 1 || !strings.Contains(b[0], `"detail":{"inner":{"a":1}}`) {
		t.Errorf("whole = %q", b)
	}
	if b := e.bodies(t, part); len(b) != 1 || b[0] != `{"a":1}` {
		t.Errorf("InputPath = %q", b)
	}
	if b := e.bodies(t, fixed); len(b) != 1 || b[0] != `{"constant":true}` {
		t.Errorf("Input = %q", b)
	}
}

// A real handover event, as events.EncodeWith writes it, published in
// process, arrives byte for byte and decodes as the controller would.
func TestPublishHandoverEvent(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	qurl, arn := e.queue(t, "handover")
	pattern := `{"source":["aws.autoscaling"],"detail-type":["EC2 Instance-launch Lifecycle Action"],"detail":{"LifecycleTransition":["autoscaling:EC2_INSTANCE_LAUNCHING"]}}`
	if _, err := e.ebc.PutRule(ctx, &awseb.PutRuleInput{Name: aws.String("launch"), EventPattern: aws.String(pattern)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ebc.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String("launch"), Targets: []types.Target{{Id: aws.String("q"), Arn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
	var launch []byte
	for _, f := range []string{"launch-action.json", "terminate-action.json", "snapshot.json"} {
		raw, err := os.ReadFile("../../events/testdata/encoded/" + f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(raw)
		if err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		encoded, err := events.EncodeWith(ev, events.EncodeOptions{})
		if err != nil {
			t.Fatalf("encoding %s: %v", f, err)
		}
		if err := e.eb.Publish(ctx, encoded); err != nil {
			t.Fatalf("Publish %s: %v", f, err)
		}
		if f == "launch-action.json" {
			launch = encoded
		}
	}
	bodies := e.bodies(t, qurl)
	if len(bodies) != 1 {
		t.Fatalf("queue got %d messages, want only the launch action", len(bodies))
	}
	if !bytes.Equal([]byte(bodies[0]), launch) {
		t.Fatalf("delivered body differs from the published event:\n%s\n%s", bodies[0], launch)
	}
	got, err := events.DecodeSQSBody(bodies[0])
	if err != nil {
		t.Fatalf("the controller could not decode the delivered body: %v", err)
	}
	if got.Lifecycle == nil || got.Lifecycle.Token != "tok-1" {
		t.Fatalf("decoded %+v", got)
	}
	if err := e.eb.Publish(ctx, []byte(`{"detail":{}}`)); err == nil {
		t.Fatal("Publish accepted an event without source and detail-type")
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	first, err := New(Config{Queues: rec, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.putRule(putRuleInput{Name: "keep", EventPattern: `{"source":["s"]}`, State: stateEnabled}); err != nil {
		t.Fatal(err)
	}
	if err := first.putTargets("keep", "", []target{{ID: "t", ARN: "arn:aws:sqs:us-east-1:000000000000:q", InputPath: "$.detail"}}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := New(Config{Queues: rec, DataDir: dir})
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	t.Cleanup(func() { second.Close() })
	r, err := second.describeRule("keep", "")
	if err != nil || r.EventPattern != `{"source":["s"]}` || len(r.Targets) != 1 || r.Targets[0].InputPath != "$.detail" {
		t.Fatalf("rule after restart = %+v, %v", r, err)
	}
	if err := second.Publish(ctxT(t), []byte(`{"source":"s","detail-type":"d","detail":{"n":1}}`)); err != nil {
		t.Fatal(err)
	}
	if err := second.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := rec.bodies(); !reflect.DeepEqual(got, []string{`{"n":1}`}) {
		t.Fatalf("after restart delivered %q", got)
	}
}
