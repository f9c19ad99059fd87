package deploy

import (
	"fmt"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/lambda"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/s3"
	"github.com/awslabs/goformation/v7/cloudformation/sqs"
)

// The ELB access-log pipeline's stack (`handover deploy template --logs`):
// the log bucket, notifying the queue (or the function directly), the queue
// and its dead-letter queue, and the pipeline as a Lambda function with its
// event source mapping and a least-privilege role. It is a stack of its
// own: it serves load balancers, not Auto Scaling groups, and comes and
// goes with them.

// How S3 reaches the function (LogsConfig.Trigger).
const (
	// TriggerSQS: the bucket notifies the queue; the function consumes it.
	TriggerSQS = "sqs"
	// TriggerDirect: the bucket invokes the function; the queue carries
	// only continuations and what the function could not finish.
	TriggerDirect = "direct"
	// TriggerDaemon: the bucket notifies the queue; `handover logs run`
	// consumes it on EC2, under the instance profile the stack makes. No
	// function.
	TriggerDaemon = "daemon"
)

// LogsConfig describes the log pipeline's stack; what differs between
// accounts (bucket, domain) is a parameter of the template.
type LogsConfig struct {
	Trigger string
}

// Validate says what to change. Its errors are *FieldError.
func (c LogsConfig) Validate() error {
	if c.Trigger != TriggerSQS && c.Trigger != TriggerDirect && c.Trigger != TriggerDaemon {
		return fieldErr("logs-trigger", "%q is not a trigger: use %s (the bucket notifies the queue the function consumes), %s (the bucket invokes the function) or %s (the bucket notifies the queue handover logs run consumes on EC2)",
			c.Trigger, TriggerSQS, TriggerDirect, TriggerDaemon)
	}
	return nil
}

// Logical ids of the log stack.
const (
	idLogBucket       = "LogBucket"
	idLogBucketPolicy = "LogBucketPolicy"
	idLogsQueue       = "LogsQueue"
	idLogsDeadLetter  = "LogsDeadLetterQueue"
	idLogsQueuePolicy = "LogsQueuePolicy"
	idLogsRole        = "LogsFunctionRole"
	idLogsFunction    = "LogsFunction"
	idLogsLogGroup    = "LogsFunctionLogGroup"
	idLogsMapping     = "LogsQueueMapping"
	idLogsPermission  = "LogBucketInvokePermission"
	idDaemonRole      = "LogsDaemonRole"
	idDaemonProfile   = "LogsDaemonInstanceProfile"

	paramLogBucket   = "LogBucketName"
	paramLogPrefix   = "LogPrefix"
	paramEndpoint    = "DomainEndpoint"
	paramDomainARN   = "DomainArn"
	paramIndexPrefix = "IndexPrefix"
	paramELBAccount  = "ElbAccountId"
	condELBAccount   = "ElbWritesAsAccount"
	logsPolicyName   = "handover-logs"
	daemonPolicyName = "handover-logs-daemon"
	// daemonVisibility: the daemon extends a message's visibility at half
	// of it while it works, so it need not outlast a file; it is how long
	// a message waits after a daemon dies.
	daemonVisibility  = 300
	logsFunctionLimit = 900 // Lambda's maximum: the fewest continuations
	// logsVisibility is six times the function's timeout, as Lambda
	// advises for an SQS event source.
	logsVisibility = 6 * logsFunctionLimit
	// logsMargin leaves time for the bulk in flight and the continuation
	// before the deadline.
	logsMargin = "60s"
)

// Where the log objects are, built from the parameters (not from the
// bucket's attributes: the queue policy and the permission must exist
// before the bucket that notifies through them).
var (
	arnLogBucket  = cloudformation.Sub("arn:${AWS::Partition}:s3:::${" + paramLogBucket + "}")
	arnLogObjects = cloudformation.Sub("arn:${AWS::Partition}:s3:::${" + paramLogBucket + "}/${" + paramLogPrefix + "}*")
	// ELB writes under PREFIX/AWSLogs/ACCOUNT/ (LogPrefix ends in AWSLogs/).
	arnELBWrites = cloudformation.Sub("arn:${AWS::Partition}:s3:::${" + paramLogBucket + "}/${" + paramLogPrefix + "}${AWS::AccountId}/*")
)

// LogsTemplate renders the log pipeline's stack as indented JSON with
// sorted keys.
func LogsTemplate(c LogsConfig) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	policy, what := logsPolicy(), "the log function's policy"
	if c.Trigger == TriggerDaemon {
		policy, what = daemonPolicy(), "the log daemon's policy"
	}
	if err := checkPolicySize(policy, what, maxRolePolicySize); err != nil {
		return nil, err
	}
	runner := "the pipeline as a Lambda function (handover lambda --mode logs)"
	if c.Trigger == TriggerDaemon {
		runner = "a role and instance profile for the pipeline as a daemon on EC2 (handover logs run)"
	}
	t := cloudformation.NewTemplate()
	t.Description = fmt.Sprintf("handover logs (trigger %s): the ELB access-log bucket, its notifications, the queue with a dead-letter queue, "+
		"and %s indexing into an Amazon OpenSearch Service domain, "+
		"with a least-privilege role. See Metadata.Handover.", c.Trigger, runner)
	t.Metadata = map[string]any{"Handover": map[string]any{
		"Trigger": c.Trigger,
		"Notes": []string{
			"Turn access logging on for each load balancer, into this bucket under the prefix before AWSLogs/ (none when LogPrefix is AWSLogs/): " +
				"aws elbv2 modify-load-balancer-attributes --load-balancer-arn ARN --attributes Key=access_logs.s3.enabled,Value=true " +
				"Key=access_logs.s3.bucket,Value=BUCKET Key=access_logs.s3.prefix,Value=PREFIX",
			"The bucket lets ELB write through the service principal logdelivery.elasticloadbalancing.amazonaws.com, and NLB TLS logs through " +
				"delivery.logs.amazonaws.com. In regions opened before August 2022 Classic and Application Load Balancers write as their " +
				"region's Elastic Load Balancing account: give its id as ElbAccountId.",
			"The domain's access policy (or, with fine-grained access control, a role mapping) must admit the role of output RoleArn; " +
				"requests are signed with SigV4 for service es.",
			"Log files the function cannot finish before its deadline go on as continuation messages on the queue; records that keep " +
				"failing go to the dead-letter queue after 5 receives, as do lines that cannot be indexed (with their object, offset, cause and reason).",
			"Deploying needs --capabilities CAPABILITY_IAM: the stack creates an IAM role.",
		},
	}}
	if c.Trigger == TriggerDaemon {
		t.Metadata["Handover"].(map[string]any)["Notes"] = append(t.Metadata["Handover"].(map[string]any)["Notes"].([]string),
			"Run the pipeline on an instance launched with the output InstanceProfileName: handover logs run --queue-url QUEUE_URL "+
				"--dlq-url DEAD_LETTER_QUEUE_URL --endpoint https://DOMAIN_ENDPOINT --sigv4 (the outputs QueueUrl and DeadLetterQueueUrl). "+
				"It keeps each message invisible while it works (at half the queue's 300 s visibility timeout), so a message comes back "+
				"5 minutes after a daemon dies.")
	}
	if c.Trigger != TriggerDaemon {
		t.Parameters[paramBucket] = cloudformation.Parameter{Type: "String", MinLength: cloudformation.Int(3),
			Description: cloudformation.String("S3 bucket holding the function's zip: the handover binary for Linux, named bootstrap")}
		t.Parameters[paramKey] = cloudformation.Parameter{Type: "String", MinLength: cloudformation.Int(1),
			Description: cloudformation.String("S3 key of the function's zip")}
		t.Parameters[paramArch] = cloudformation.Parameter{Type: "String", Default: "x86_64", AllowedValues: []any{"x86_64", "arm64"},
			Description: cloudformation.String("CPU architecture the bootstrap binary was built for")}
	}
	t.Parameters[paramLogBucket] = cloudformation.Parameter{Type: "String", AllowedPattern: cloudformation.String(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`),
		Description: cloudformation.String("name of the log bucket the stack creates")}
	t.Parameters[paramLogPrefix] = cloudformation.Parameter{Type: "String", Default: "AWSLogs/", AllowedPattern: cloudformation.String(`^([^*?]+/)?AWSLogs/$`),
		Description: cloudformation.String("key prefix of the log objects, ending in AWSLogs/: the load balancers' access-log prefix, then AWSLogs/")}
	t.Parameters[paramDomainARN] = cloudformation.Parameter{Type: "String", AllowedPattern: cloudformation.String(`^arn:aws[a-z-]*:es:[a-z0-9-]+:[0-9]{12}:domain/[a-z][a-z0-9-]{2,27}$`),
		Description: cloudformation.String("the domain's ARN, arn:aws:es:REGION:ACCOUNT:domain/NAME: the pipeline may POST and PUT under it, nothing else")}
	// The daemon takes the endpoint and the index prefix as flags.
	if c.Trigger != TriggerDaemon {
		t.Parameters[paramEndpoint] = cloudformation.Parameter{Type: "String", AllowedPattern: cloudformation.String(`^https://[^/]+$`),
			Description: cloudformation.String("the domain's endpoint, e.g. https://search-logs-abc.us-east-1.es.amazonaws.com")}
		t.Parameters[paramIndexPrefix] = cloudformation.Parameter{Type: "String", Default: "elb-logs", AllowedPattern: cloudformation.String(`^[a-z0-9][a-z0-9_-]*$`),
			Description: cloudformation.String("daily indices are PREFIX-YYYY.MM.DD")}
	}
	t.Parameters[paramELBAccount] = cloudformation.Parameter{Type: "String", Default: "", AllowedPattern: cloudformation.String(`^([0-9]{12})?$`),
		Description: cloudformation.String("in regions opened before August 2022: the region's Elastic Load Balancing account id, as whom ELB writes logs; empty elsewhere")}
	// goformation keeps intrinsics only in its encoded form.
	t.Conditions[condELBAccount] = cloudformation.Not([]string{cloudformation.Equals(cloudformation.Ref(paramELBAccount), "")})

	r := t.Resources
	r[idLogsDeadLetter] = &sqs.Queue{
		MessageRetentionPeriod: cloudformation.Int(deadLetterRetention),
		SqsManagedSseEnabled:   cloudformation.Bool(true),
	}
	visibility := logsVisibility
	if c.Trigger == TriggerDaemon {
		visibility = daemonVisibility
	}
	r[idLogsQueue] = &sqs.Queue{
		VisibilityTimeout:    cloudformation.Int(visibility),
		SqsManagedSseEnabled: cloudformation.Bool(true),
		RedrivePolicy: map[string]any{
			"deadLetterTargetArn": cloudformation.GetAtt(idLogsDeadLetter, "Arn"),
			"maxReceiveCount":     maxReceiveCount,
		},
	}
	if c.Trigger == TriggerDaemon {
		r[idDaemonRole] = &iam.Role{
			Description:              cloudformation.String("handover logs run: the ELB access-log pipeline as a daemon on EC2"),
			AssumeRolePolicyDocument: ec2Trust(),
			Policies:                 []iam.Role_Policy{{PolicyName: daemonPolicyName, PolicyDocument: policy}},
		}
		r[idDaemonProfile] = &iam.InstanceProfile{Roles: []string{cloudformation.Ref(idDaemonRole)}}
	} else {
		addLogsFunction(t, policy)
	}
	addLogBucket(t, c)
	t.Outputs["LogBucketName"] = output(cloudformation.Ref(idLogBucket), "the bucket load balancers write access logs to")
	t.Outputs["DeadLetterQueueUrl"] = output(cloudformation.Ref(idLogsDeadLetter), "dead letters: lines and objects that cannot be indexed (HANDOVER_LOGS_DLQ_URL)")
	if c.Trigger == TriggerDaemon {
		t.Outputs["QueueUrl"] = output(cloudformation.Ref(idLogsQueue), "the notifications queue (handover logs run --queue-url)")
		t.Outputs["RoleArn"] = output(cloudformation.GetAtt(idDaemonRole, "Arn"), "the daemon's role: admit it in the domain's access policy")
		t.Outputs["InstanceProfileName"] = output(cloudformation.Ref(idDaemonProfile), "instance profile for handover logs run on EC2")
		t.Outputs["InstanceProfileArn"] = output(cloudformation.GetAtt(idDaemonProfile, "Arn"), "instance profile for handover logs run on EC2")
	} else {
		t.Outputs["QueueUrl"] = output(cloudformation.Ref(idLogsQueue), "the notifications and continuations queue (HANDOVER_QUEUE_URL)")
		t.Outputs["FunctionName"] = output(cloudformation.Ref(idLogsFunction), "the pipeline's function")
		t.Outputs["RoleArn"] = output(cloudformation.GetAtt(idLogsRole, "Arn"), "the function's role: admit it in the domain's access policy")
		t.Outputs["LogGroupName"] = output(cloudformation.Ref(idLogsLogGroup), "the function's log group (aws logs tail NAME --follow)")
	}
	out, err := t.JSON()
	if err != nil {
		return nil, fmt.Errorf("rendering the template: %w", err)
	}
	return append(out, '\n'), nil
}

// addLogsFunction adds the pipeline's function, its log group, role and
// event source mapping.
func addLogsFunction(t *cloudformation.Template, policy PolicyDocument) {
	r := t.Resources
	r[idLogsLogGroup] = &logs.LogGroup{RetentionInDays: cloudformation.Int(logRetentionDays)}
	r[idLogsRole] = &iam.Role{
		Description:              cloudformation.String("handover logs: the ELB access-log pipeline (Lambda)"),
		AssumeRolePolicyDocument: lambdaTrust(),
		Policies:                 []iam.Role_Policy{{PolicyName: logsPolicyName, PolicyDocument: policy}},
	}
	r[idLogsFunction] = &lambda.Function{
		Description:   cloudformation.String("handover logs: S3 notifications of ELB access logs → OpenSearch, each line once"),
		Runtime:       cloudformation.String("provided.al2023"),
		Handler:       cloudformation.String("bootstrap"),
		Architectures: []string{cloudformation.Ref(paramArch)},
		Code:          &lambda.Function_Code{S3Bucket: cloudformation.RefPtr(paramBucket), S3Key: cloudformation.RefPtr(paramKey)},
		Role:          cloudformation.GetAtt(idLogsRole, "Arn"),
		// Memory is bounded by the bulk size, not the file's; 512 MB
		// buys the CPU share that parsing wants.
		MemorySize:    cloudformation.Int(512),
		Timeout:       cloudformation.Int(logsFunctionLimit),
		LoggingConfig: &lambda.Function_LoggingConfig{LogGroup: cloudformation.RefPtr(idLogsLogGroup)},
		Environment: &lambda.Function_Environment{Variables: map[string]string{
			"HANDOVER_LAMBDA_MODE":          "logs",
			"HANDOVER_LOGS_ENDPOINT":        cloudformation.Ref(paramEndpoint),
			"HANDOVER_LOGS_SIGV4":           "true",
			"HANDOVER_LOGS_INDEX_PREFIX":    cloudformation.Ref(paramIndexPrefix),
			"HANDOVER_LOGS_DLQ_URL":         cloudformation.Ref(idLogsDeadLetter),
			"HANDOVER_QUEUE_URL":            cloudformation.Ref(idLogsQueue),
			"HANDOVER_LOGS_DEADLINE_MARGIN": logsMargin,
		}},
	}
	r[idLogsMapping] = &lambda.EventSourceMapping{
		EventSourceArn:        cloudformation.GetAttPtr(idLogsQueue, "Arn"),
		FunctionName:          cloudformation.Ref(idLogsFunction),
		BatchSize:             cloudformation.Int(10),
		FunctionResponseTypes: []string{"ReportBatchItemFailures"},
		Enabled:               cloudformation.Bool(true),
	}
}

// addLogBucket adds the log bucket, its policy and its notification: to
// the function (direct) or to the queue, with the queue policy that lets
// this bucket alone send to it.
func addLogBucket(t *cloudformation.Template, c LogsConfig) {
	r := t.Resources

	filter := &s3.Bucket_NotificationFilter{S3Key: &s3.Bucket_S3KeyFilter{Rules: []s3.Bucket_FilterRule{{Name: "prefix", Value: cloudformation.Ref(paramLogPrefix)}}}}
	notify := &s3.Bucket_NotificationConfiguration{}
	var dependsOn []string
	if c.Trigger == TriggerDirect {
		r[idLogsPermission] = &lambda.Permission{
			Action:        "lambda:InvokeFunction",
			FunctionName:  cloudformation.Ref(idLogsFunction),
			Principal:     "s3.amazonaws.com",
			SourceArn:     cloudformation.String(arnLogBucket),
			SourceAccount: cloudformation.RefPtr("AWS::AccountId"),
		}
		notify.LambdaConfigurations = []s3.Bucket_LambdaConfiguration{{Event: "s3:ObjectCreated:*", Filter: filter, Function: cloudformation.GetAtt(idLogsFunction, "Arn")}}
		dependsOn = []string{idLogsPermission}
	} else {
		r[idLogsQueuePolicy] = &sqs.QueuePolicy{
			Queues:         []string{cloudformation.Ref(idLogsQueue)},
			PolicyDocument: logsQueuePolicy(),
		}
		notify.QueueConfigurations = []s3.Bucket_QueueConfiguration{{Event: "s3:ObjectCreated:*", Filter: filter, Queue: cloudformation.GetAtt(idLogsQueue, "Arn")}}
		dependsOn = []string{idLogsQueuePolicy}
	}
	r[idLogBucket] = &s3.Bucket{
		BucketName: cloudformation.RefPtr(paramLogBucket),
		// SSE-S3 is the only encryption ELB log delivery supports.
		BucketEncryption: &s3.Bucket_BucketEncryption{ServerSideEncryptionConfiguration: []s3.Bucket_ServerSideEncryptionRule{{
			ServerSideEncryptionByDefault: &s3.Bucket_ServerSideEncryptionByDefault{SSEAlgorithm: "AES256"}}}},
		PublicAccessBlockConfiguration: &s3.Bucket_PublicAccessBlockConfiguration{BlockPublicAcls: cloudformation.Bool(true),
			BlockPublicPolicy: cloudformation.Bool(true), IgnorePublicAcls: cloudformation.Bool(true), RestrictPublicBuckets: cloudformation.Bool(true)},
		NotificationConfiguration:  notify,
		AWSCloudFormationDependsOn: dependsOn,
	}
	r[idLogBucketPolicy] = &s3.BucketPolicy{Bucket: cloudformation.Ref(idLogBucket), PolicyDocument: logBucketPolicy()}
}

// logsPolicy is the function's inline policy: read the log objects, consume
// the queue and send it continuations, send dead letters, write to the
// domain, write its logs. The function never changes a message's
// visibility (a file that outlives it is continued instead), so it may not.
func logsPolicy() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{Sid: "ReadLogObjects", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{arnLogObjects}},
		{Sid: "ConsumeQueue", Effect: "Allow", Action: []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
			Resource: []string{cloudformation.GetAtt(idLogsQueue, "Arn")}},
		{Sid: "Continuations", Effect: "Allow", Action: []string{"sqs:SendMessage"}, Resource: []string{cloudformation.GetAtt(idLogsQueue, "Arn")}},
		{Sid: "DeadLetters", Effect: "Allow", Action: []string{"sqs:SendMessage"}, Resource: []string{cloudformation.GetAtt(idLogsDeadLetter, "Arn")}},
		{Sid: "IndexIntoDomain", Effect: "Allow", Action: []string{"es:ESHttpPost", "es:ESHttpPut"},
			Resource: []string{cloudformation.Sub("${" + paramDomainARN + "}/*")}},
		{Sid: "FunctionLogs", Effect: "Allow", Action: []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			Resource: []string{cloudformation.GetAtt(idLogsLogGroup, "Arn")}},
	}}
}

// daemonPolicy is the inline policy of `handover logs run` on EC2: read
// the log objects, consume the queue keeping each message invisible while
// it works (ChangeMessageVisibility; GetQueueAttributes reads the queue's
// timeout), send dead letters, write to the domain. It sends no
// continuations: the daemon extends the visibility instead.
func daemonPolicy() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{Sid: "ReadLogObjects", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{arnLogObjects}},
		{Sid: "ConsumeQueue", Effect: "Allow", Action: []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
			Resource: []string{cloudformation.GetAtt(idLogsQueue, "Arn")}},
		{Sid: "DeadLetters", Effect: "Allow", Action: []string{"sqs:SendMessage"}, Resource: []string{cloudformation.GetAtt(idLogsDeadLetter, "Arn")}},
		{Sid: "IndexIntoDomain", Effect: "Allow", Action: []string{"es:ESHttpPost", "es:ESHttpPut"},
			Resource: []string{cloudformation.Sub("${" + paramDomainARN + "}/*")}},
	}}
}

// logsQueuePolicy lets this stack's bucket, and nothing else, send to the
// queue.
func logsQueuePolicy() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{{
		Sid: "LogBucketOnly", Effect: "Allow",
		Principal: map[string]any{"Service": "s3.amazonaws.com"},
		Action:    []string{"sqs:SendMessage"},
		Resource:  []string{cloudformation.GetAtt(idLogsQueue, "Arn")},
		Condition: map[string]map[string]any{
			"ArnEquals":    {"aws:SourceArn": arnLogBucket},
			"StringEquals": {"aws:SourceAccount": cloudformation.Ref("AWS::AccountId")},
		},
	}}}
}

// logBucketPolicy lets ELB deliver access logs under the prefix, for this
// account's load balancers only: through the service principal, through
// the log delivery service for NLB TLS logs, and, where the region needs
// it, as the region's ELB account.
func logBucketPolicy() map[string]any {
	acl := map[string]map[string]any{
		"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceAccount": cloudformation.Ref("AWS::AccountId")},
	}
	return map[string]any{"Version": "2012-10-17", "Statement": []any{
		Statement{Sid: "ElbLogDelivery", Effect: "Allow", Principal: map[string]any{"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
			Action: []string{"s3:PutObject"}, Resource: []string{arnELBWrites}},
		Statement{Sid: "NlbLogDelivery", Effect: "Allow", Principal: map[string]any{"Service": "delivery.logs.amazonaws.com"},
			Action: []string{"s3:PutObject"}, Resource: []string{arnELBWrites}, Condition: acl},
		Statement{Sid: "NlbLogDeliveryAcl", Effect: "Allow", Principal: map[string]any{"Service": "delivery.logs.amazonaws.com"},
			Action: []string{"s3:GetBucketAcl"}, Resource: []string{arnLogBucket},
			Condition: map[string]map[string]any{"StringEquals": {"aws:SourceAccount": cloudformation.Ref("AWS::AccountId")}}},
		cloudformation.If(condELBAccount,
			Statement{Sid: "ElbAccountLogDelivery", Effect: "Allow",
				Principal: map[string]any{"AWS": cloudformation.Sub("arn:${AWS::Partition}:iam::${" + paramELBAccount + "}:root")},
				Action:    []string{"s3:PutObject"}, Resource: []string{arnELBWrites}},
			cloudformation.Ref("AWS::NoValue")),
	}}
}
