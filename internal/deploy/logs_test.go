package deploy

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func renderLogs(t *testing.T, trigger string) map[string]any {
	t.Helper()
	b, err := LogsTemplate(LogsConfig{Trigger: trigger})
	if err != nil {
		t.Fatalf("LogsTemplate: %v", err)
	}
	parse(t, b) // goformation reads it back
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("the template is not JSON: %v", err)
	}
	return m
}

var triggers = []string{TriggerSQS, TriggerDirect, TriggerDaemon}

// functionTriggers run the pipeline as a Lambda function.
var functionTriggers = []string{TriggerSQS, TriggerDirect}

func TestLogsTemplateResources(t *testing.T) {
	common := map[string]string{
		idLogBucket: "AWS::S3::Bucket", idLogBucketPolicy: "AWS::S3::BucketPolicy",
		idLogsQueue: "AWS::SQS::Queue", idLogsDeadLetter: "AWS::SQS::Queue",
	}
	function := map[string]string{
		idLogsRole: "AWS::IAM::Role", idLogsFunction: "AWS::Lambda::Function", idLogsLogGroup: "AWS::Logs::LogGroup",
		idLogsMapping: "AWS::Lambda::EventSourceMapping",
	}
	want := map[string]map[string]string{
		TriggerSQS:    {idLogsQueuePolicy: "AWS::SQS::QueuePolicy"},
		TriggerDirect: {idLogsPermission: "AWS::Lambda::Permission"},
		TriggerDaemon: {idLogsQueuePolicy: "AWS::SQS::QueuePolicy", idDaemonRole: "AWS::IAM::Role", idDaemonProfile: "AWS::IAM::InstanceProfile"},
	}
	for _, tr := range functionTriggers {
		maps.Copy(want[tr], function)
	}
	for _, tr := range triggers {
		t.Run(tr, func(t *testing.T) {
			tmpl := renderLogs(t, tr)
			got := map[string]string{}
			for id, r := range resources(t, tmpl) {
				got[id] = r["Type"].(string)
			}
			w := maps.Clone(common)
			maps.Copy(w, want[tr])
			if !maps.Equal(got, w) {
				t.Errorf("resources:\n got %v\nwant %v", got, w)
			}
			checkReferences(t, tmpl)
		})
	}
}

// The function's role, statement by statement: any widening fails.
func TestLogsPolicyExact(t *testing.T) {
	for _, tr := range functionTriggers {
		t.Run(tr, func(t *testing.T) {
			got := policyStatements(t, renderLogs(t, tr), idLogsRole+".Policies."+logsPolicyName)
			sameStatements(t, got, []wantStatement{
				{"ReadLogObjects", `{"Action": ["s3:GetObject"], "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${LogBucketName}/${LogPrefix}*"}]}`},
				{"ConsumeQueue", `{"Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], "Resource": [{"Fn::GetAtt": ["LogsQueue", "Arn"]}]}`},
				{"Continuations", `{"Action": ["sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["LogsQueue", "Arn"]}]}`},
				{"DeadLetters", `{"Action": ["sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["LogsDeadLetterQueue", "Arn"]}]}`},
				{"IndexIntoDomain", `{"Action": ["es:ESHttpPost", "es:ESHttpPut"], "Resource": [{"Fn::Sub": "${DomainArn}/*"}]}`},
				{"FunctionLogs", `{"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [{"Fn::GetAtt": ["LogsFunctionLogGroup", "Arn"]}]}`},
			})
		})
	}
}

// The daemon's role (--logs-trigger daemon), statement by statement: what
// `handover logs run` calls and nothing more; EC2 alone may assume it,
// through the stack's instance profile.
func TestLogsDaemonRoleExact(t *testing.T) {
	tmpl := renderLogs(t, TriggerDaemon)
	got := policyStatements(t, tmpl, idDaemonRole+".Policies."+daemonPolicyName)
	sameStatements(t, got, []wantStatement{
		{"ReadLogObjects", `{"Action": ["s3:GetObject"], "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${LogBucketName}/${LogPrefix}*"}]}`},
		{"ConsumeQueue", `{"Action": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], "Resource": [{"Fn::GetAtt": ["LogsQueue", "Arn"]}]}`},
		{"DeadLetters", `{"Action": ["sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["LogsDeadLetterQueue", "Arn"]}]}`},
		{"IndexIntoDomain", `{"Action": ["es:ESHttpPost", "es:ESHttpPut"], "Resource": [{"Fn::Sub": "${DomainArn}/*"}]}`},
	})
	role := props(t, tmpl, idDaemonRole)
	if got, want := compact(role["AssumeRolePolicyDocument"]), `{"Statement":[{"Action":["sts:AssumeRole"],"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Sid":"Ec2"}],"Version":"2012-10-17"}`; got != want {
		t.Errorf("trust:\n got %s\nwant %s", got, want)
	}
	if got := compact(props(t, tmpl, idDaemonProfile)); got != `{"Roles":[{"Ref":"LogsDaemonRole"}]}` {
		t.Errorf("instance profile %s", got)
	}
	// The daemon extends visibility as it works: the queue's timeout is
	// how long a message waits after a daemon dies, not a file's length.
	q := props(t, tmpl, idLogsQueue)
	if want := `{"RedrivePolicy":{"deadLetterTargetArn":{"Fn::GetAtt":["LogsDeadLetterQueue","Arn"]},"maxReceiveCount":5},"SqsManagedSseEnabled":true,"VisibilityTimeout":300}`; compact(q) != want {
		t.Errorf("queue %s, want %s", compact(q), want)
	}
	outs := slices.Sorted(maps.Keys(tmpl["Outputs"].(map[string]any)))
	if want := []string{"DeadLetterQueueUrl", "InstanceProfileArn", "InstanceProfileName", "LogBucketName", "QueueUrl", "RoleArn"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
	params := slices.Sorted(maps.Keys(tmpl["Parameters"].(map[string]any)))
	if want := []string{"DomainArn", "ElbAccountId", "LogBucketName", "LogPrefix"}; !slices.Equal(params, want) {
		t.Errorf("parameters %v, want %v (no function: its code, endpoint and index prefix are the daemon's flags)", params, want)
	}
}

// No policy of the stack has a wildcard action, a Not… element, a Deny,
// or a resource of "*"; every principal that is a service is held to this
// account or this bucket.
func TestLogsPoliciesScoped(t *testing.T) {
	for _, tr := range triggers {
		tmpl := renderLogs(t, tr)
		docs := policyDocuments(t, tmpl)
		if len(docs) < 3 {
			t.Fatalf("%s: only %d policy documents: %v", tr, len(docs), slices.Collect(maps.Keys(docs)))
		}
		for where, doc := range docs {
			for _, s := range statements(t, doc) {
				if _, cond := s["Fn::If"]; cond {
					s = s["Fn::If"].([]any)[1].(map[string]any)
				}
				for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
					if _, ok := s[k]; ok {
						t.Errorf("%s %s: statement %v uses %s", tr, where, s["Sid"], k)
					}
				}
				if s["Effect"] != "Allow" {
					t.Errorf("%s %s: statement %v has effect %v", tr, where, s["Sid"], s["Effect"])
				}
				for _, a := range strs(s["Action"]) {
					if strings.ContainsAny(a, "*?") {
						t.Errorf("%s %s: action %q has a wildcard", tr, where, a)
					}
				}
				for _, r := range strs(s["Resource"]) {
					if r == "*" {
						t.Errorf("%s %s: statement %v names every resource", tr, where, s["Sid"])
					}
				}
			}
		}
	}
}

// The bucket notifies the queue (sqs) or the function (direct) of every
// object created under the prefix, and waits for what lets S3 do so: the
// queue policy that admits this bucket alone, or the permission to invoke.
func TestLogsNotification(t *testing.T) {
	for _, tc := range []struct {
		trigger, notify, dependsOn, grant string
	}{
		{TriggerSQS, `{"QueueConfigurations":[{"Event":"s3:ObjectCreated:*","Filter":{"S3Key":{"Rules":[{"Name":"prefix","Value":{"Ref":"LogPrefix"}}]}},"Queue":{"Fn::GetAtt":["LogsQueue","Arn"]}}]}`,
			idLogsQueuePolicy,
			`{"PolicyDocument":{"Statement":[{"Action":["sqs:SendMessage"],"Condition":{"ArnEquals":{"aws:SourceArn":{"Fn::Sub":"arn:${AWS::Partition}:s3:::${LogBucketName}"}},"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"}}},"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Resource":[{"Fn::GetAtt":["LogsQueue","Arn"]}],"Sid":"LogBucketOnly"}],"Version":"2012-10-17"},"Queues":[{"Ref":"LogsQueue"}]}`},
		{TriggerDaemon, `{"QueueConfigurations":[{"Event":"s3:ObjectCreated:*","Filter":{"S3Key":{"Rules":[{"Name":"prefix","Value":{"Ref":"LogPrefix"}}]}},"Queue":{"Fn::GetAtt":["LogsQueue","Arn"]}}]}`,
			idLogsQueuePolicy,
			`{"PolicyDocument":{"Statement":[{"Action":["sqs:SendMessage"],"Condition":{"ArnEquals":{"aws:SourceArn":{"Fn::Sub":"arn:${AWS::Partition}:s3:::${LogBucketName}"}},"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"}}},"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Resource":[{"Fn::GetAtt":["LogsQueue","Arn"]}],"Sid":"LogBucketOnly"}],"Version":"2012-10-17"},"Queues":[{"Ref":"LogsQueue"}]}`},
		{TriggerDirect, `{"LambdaConfigurations":[{"Event":"s3:ObjectCreated:*","Filter":{"S3Key":{"Rules":[{"Name":"prefix","Value":{"Ref":"LogPrefix"}}]}},"Function":{"Fn::GetAtt":["LogsFunction","Arn"]}}]}`,
			idLogsPermission,
			`{"Action":"lambda:InvokeFunction","FunctionName":{"Ref":"LogsFunction"},"Principal":"s3.amazonaws.com","SourceAccount":{"Ref":"AWS::AccountId"},"SourceArn":{"Fn::Sub":"arn:${AWS::Partition}:s3:::${LogBucketName}"}}`},
	} {
		t.Run(tc.trigger, func(t *testing.T) {
			tmpl := renderLogs(t, tc.trigger)
			b := props(t, tmpl, idLogBucket)
			if got := compact(b["NotificationConfiguration"]); got != tc.notify {
				t.Errorf("notification:\n got %s\nwant %s", got, tc.notify)
			}
			if got := strs(resources(t, tmpl)[idLogBucket]["DependsOn"]); !slices.Equal(got, []string{tc.dependsOn}) {
				t.Errorf("the bucket depends on %v, want %s", got, tc.dependsOn)
			}
			if got := compact(props(t, tmpl, tc.dependsOn)); got != tc.grant {
				t.Errorf("%s:\n got %s\nwant %s", tc.dependsOn, got, tc.grant)
			}
			if got := compact(b["BucketEncryption"]); got != `{"ServerSideEncryptionConfiguration":[{"ServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}` {
				t.Errorf("encryption %s: ELB log delivery takes SSE-S3 only", got)
			}
		})
	}
}

// The function runs the log pipeline with its configuration from the
// stack, behind the queue with partial batch failures; the queue outlasts
// six function timeouts and has its dead-letter queue.
func TestLogsFunction(t *testing.T) {
	tmpl := renderLogs(t, TriggerSQS)
	fn := props(t, tmpl, idLogsFunction)
	for k, want := range map[string]string{
		"Runtime": `"provided.al2023"`, "Handler": `"bootstrap"`, "Timeout": `900`,
		"Environment": `{"Variables":{"HANDOVER_LAMBDA_MODE":"logs","HANDOVER_LOGS_DEADLINE_MARGIN":"60s","HANDOVER_LOGS_DLQ_URL":{"Ref":"LogsDeadLetterQueue"},` +
			`"HANDOVER_LOGS_ENDPOINT":{"Ref":"DomainEndpoint"},"HANDOVER_LOGS_INDEX_PREFIX":{"Ref":"IndexPrefix"},"HANDOVER_LOGS_SIGV4":"true","HANDOVER_QUEUE_URL":{"Ref":"LogsQueue"}}}`,
		"Role": `{"Fn::GetAtt":["LogsFunctionRole","Arn"]}`,
	} {
		if got := compact(fn[k]); got != want {
			t.Errorf("function %s = %s, want %s", k, got, want)
		}
	}
	m := props(t, tmpl, idLogsMapping)
	if compact(m["FunctionResponseTypes"]) != `["ReportBatchItemFailures"]` || compact(m["EventSourceArn"]) != `{"Fn::GetAtt":["LogsQueue","Arn"]}` {
		t.Errorf("mapping %s", compact(m))
	}
	q := props(t, tmpl, idLogsQueue)
	if want := `{"RedrivePolicy":{"deadLetterTargetArn":{"Fn::GetAtt":["LogsDeadLetterQueue","Arn"]},"maxReceiveCount":5},"SqsManagedSseEnabled":true,"VisibilityTimeout":5400}`; compact(q) != want {
		t.Errorf("queue %s, want %s", compact(q), want)
	}
	outs := slices.Sorted(maps.Keys(tmpl["Outputs"].(map[string]any)))
	if want := []string{"DeadLetterQueueUrl", "FunctionName", "LogBucketName", "LogGroupName", "QueueUrl", "RoleArn"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
}

func TestLogsTemplateBadTrigger(t *testing.T) {
	_, err := LogsTemplate(LogsConfig{Trigger: "sns"})
	var fe *FieldError
	if err == nil || !errors.As(err, &fe) || fe.Field != "logs-trigger" || !strings.Contains(err.Error(), "use sqs") || !strings.Contains(err.Error(), "daemon") {
		t.Fatalf("error %v", err)
	}
}
