// Package deploy writes the CloudFormation template that deploys handover
// on an AWS account: the events queue and its dead-letter queue, the
// EventBridge rules that feed it, the DynamoDB ledger table, the lifecycle
// hooks of the named Auto Scaling groups, and the controller (a Lambda
// function, or a role for a long-running controller, which also runs group
// updates) with a least-privilege policy, and for the long-running one the
// policy its groups' instances need to signal an update.
//
// It only renders text: it must never call AWS. Its output must be
// deterministic for a given Config, so a template can be reviewed as a diff,
// and its policy must never grant a wildcard action or an unscoped write.
package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/autoscaling"
	"github.com/awslabs/goformation/v7/cloudformation/events"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/lambda"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/sqs"
)

// Logical ids of the template's resources and parameters. Renaming one
// makes CloudFormation replace the resource on the next update.
const (
	idQueue           = "EventsQueue"
	idDeadLetterQueue = "DeadLetterQueue"
	idQueuePolicy     = "EventsQueuePolicy"
	idTable           = "LedgerTable"
	idRole            = "ControllerRole"
	idInstanceProfile = "ControllerInstanceProfile"
	idUpdatePolicy    = "ControllerUpdatePolicy"
	idReleasePolicy   = "ControllerReleasePolicy"
	idSignalPolicy    = "InstanceSignalPolicy"
	idFunction        = "ControllerFunction"
	idLogGroup        = "ControllerLogGroup"
	idMapping         = "EventsQueueMapping"
	idSchedule        = "ReconcileSchedule"
	idPermission      = "ReconcileSchedulePermission"

	idRuleLifecycle     = "LifecycleActionRule"
	idRuleLaunch        = "LaunchResultRule"
	idRuleSnapshot      = "SnapshotResultRule"
	idRuleVolume        = "VolumeResultRule"
	idRuleInstanceState = "InstanceStateRule"

	paramBucket = "CodeS3Bucket"
	paramKey    = "CodeS3Key"
	paramArch   = "Architecture"
)

// Sizing of the function and the queue.
const (
	// functionTimeout bounds one invocation; work left over is picked up by
	// the next scheduled reconcile, a minute later.
	functionTimeout = 60
	// lambdaVisibility is six times the function's timeout, as Lambda
	// advises for an SQS event source, so a message is not redelivered
	// while a throttled invocation still holds it.
	lambdaVisibility = 6 * functionTimeout
	// controllerVisibility brings a message the controller could not
	// commit back within a minute.
	controllerVisibility = 60
	// maxReceiveCount moves a message that keeps failing to the
	// dead-letter queue (poison messages are moved at once by handover).
	maxReceiveCount = 5
	// deadLetterRetention keeps dead letters for SQS's maximum, 14 days,
	// time enough to read and redrive them.
	deadLetterRetention = 14 * 24 * 3600
	logRetentionDays    = 30
)

// Template renders the template for cfg as indented JSON with sorted keys.
func Template(cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := build(cfg)
	if err != nil {
		return nil, err
	}
	out, err := t.JSON()
	if err != nil {
		return nil, fmt.Errorf("rendering the template: %w", err)
	}
	return append(out, '\n'), nil
}

func build(cfg Config) (*cloudformation.Template, error) {
	groups := slices.Clone(cfg.Groups)
	// Sorted, so the order of --group flags does not change the template.
	slices.Sort(groups)
	cfg.Groups = groups

	rules := eventRules(cfg)
	if err := checkPatternSizes(rules); err != nil {
		return nil, err
	}
	lambdaMode := cfg.Mode == ModeLambda
	policy := controllerPolicy(cfg, lambdaMode)
	if err := checkPolicySize(policy, "the controller's policy", maxRolePolicySize); err != nil {
		return nil, err
	}
	var updates PolicyDocument
	if cfg.updates() {
		updates = updatePolicy(cfg)
		if err := checkPolicySize(updates, "the controller's group update policy", maxManagedPolicySize); err != nil {
			return nil, err
		}
	}

	t := cloudformation.NewTemplate()
	t.Description = description(cfg)
	t.Metadata = map[string]any{"Handover": metadataSection(cfg)}
	r := t.Resources

	r[idDeadLetterQueue] = &sqs.Queue{
		MessageRetentionPeriod: cloudformation.Int(deadLetterRetention),
		SqsManagedSseEnabled:   cloudformation.Bool(true),
	}
	visibility := controllerVisibility
	if lambdaMode {
		visibility = lambdaVisibility
	}
	r[idQueue] = &sqs.Queue{
		VisibilityTimeout:    cloudformation.Int(visibility),
		SqsManagedSseEnabled: cloudformation.Bool(true),
		RedrivePolicy: map[string]any{
			"deadLetterTargetArn": cloudformation.GetAtt(idDeadLetterQueue, "Arn"),
			"maxReceiveCount":     maxReceiveCount,
		},
	}
	var ruleIDs []string
	for _, rl := range rules {
		ruleIDs = append(ruleIDs, rl.id)
		r[rl.id] = &events.Rule{
			Description:  cloudformation.String(rl.description),
			EventPattern: rl.pattern,
			State:        cloudformation.String("ENABLED"),
			Targets:      []events.Rule_Target{{Id: "handover-events-queue", Arn: cloudformation.GetAtt(idQueue, "Arn")}},
		}
	}
	r[idQueuePolicy] = &sqs.QueuePolicy{
		Queues:         []string{cloudformation.Ref(idQueue)},
		PolicyDocument: queuePolicy(ruleIDs),
	}
	r[idTable] = ledgerTable()

	for _, g := range groups {
		md, err := metadata(cfg.database(g))
		if err != nil {
			return nil, err
		}
		for _, h := range []struct{ id, name, transition, result string }{
			{logicalID("LaunchHook", g), LaunchHook, "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON"},
			{logicalID("TerminateHook", g), TerminateHook, "autoscaling:EC2_INSTANCE_TERMINATING", "CONTINUE"},
		} {
			r[h.id] = &autoscaling.LifecycleHook{
				AutoScalingGroupName: g,
				LifecycleHookName:    cloudformation.String(h.name),
				LifecycleTransition:  h.transition,
				DefaultResult:        cloudformation.String(h.result),
				HeartbeatTimeout:     cloudformation.Int(int(cfg.HeartbeatTimeout.Seconds())),
				NotificationMetadata: cloudformation.String(md),
				// Hooks without a target notify EventBridge. They wait for
				// the rule and the queue policy, so no action of theirs
				// is raised before it can reach the queue.
				AWSCloudFormationDependsOn: []string{idRuleLifecycle, idQueuePolicy},
			}
		}
	}

	t.Outputs = cloudformation.Outputs{
		"EventsQueueUrl":     output(cloudformation.Ref(idQueue), "the events queue (HANDOVER_QUEUE_URL)"),
		"DeadLetterQueueUrl": output(cloudformation.Ref(idDeadLetterQueue), "the dead-letter queue (HANDOVER_DEAD_LETTER_QUEUE_URL)"),
		"LedgerTableName":    output(cloudformation.Ref(idTable), "the DynamoDB ledger table"),
		"LedgerUrl":          output(ledgerURL(), "the ledger (HANDOVER_LEDGER)"),
		"RoleArn":            output(cloudformation.GetAtt(idRole, "Arn"), "the controller's role"),
	}
	if lambdaMode {
		addFunction(t, policy, cfg.Fence)
	} else {
		addControllerRole(t, policy, updates, releasePolicy())
		addSignalPolicy(t, cfg)
	}
	return t, nil
}

// addFunction adds the Lambda function with its role, logs, queue mapping
// and reconcile schedule.
func addFunction(t *cloudformation.Template, policy PolicyDocument, fenceVia string) {
	t.Parameters[paramBucket] = cloudformation.Parameter{
		Type: "String", MinLength: cloudformation.Int(3),
		Description: cloudformation.String("S3 bucket holding the function's zip: the handover binary for Linux, named bootstrap"),
	}
	t.Parameters[paramKey] = cloudformation.Parameter{
		Type: "String", MinLength: cloudformation.Int(1),
		Description: cloudformation.String("S3 key of the function's zip"),
	}
	t.Parameters[paramArch] = cloudformation.Parameter{
		Type: "String", Default: "x86_64", AllowedValues: []any{"x86_64", "arm64"},
		Description: cloudformation.String("CPU architecture the bootstrap binary was built for"),
	}
	r := t.Resources
	r[idLogGroup] = &logs.LogGroup{RetentionInDays: cloudformation.Int(logRetentionDays)}
	r[idRole] = &iam.Role{
		Description:              cloudformation.String("handover controller (Lambda)"),
		AssumeRolePolicyDocument: lambdaTrust(),
		Policies:                 []iam.Role_Policy{{PolicyName: "handover-controller", PolicyDocument: policy}},
	}
	r[idFunction] = &lambda.Function{
		Description:   cloudformation.String("handover controller: events from the queue, reconcile and sweep on a schedule"),
		Runtime:       cloudformation.String("provided.al2023"),
		Handler:       cloudformation.String("bootstrap"),
		Architectures: []string{cloudformation.Ref(paramArch)},
		Code: &lambda.Function_Code{
			S3Bucket: cloudformation.RefPtr(paramBucket),
			S3Key:    cloudformation.RefPtr(paramKey),
		},
		Role:          cloudformation.GetAtt(idRole, "Arn"),
		MemorySize:    cloudformation.Int(256),
		Timeout:       cloudformation.Int(functionTimeout),
		LoggingConfig: &lambda.Function_LoggingConfig{LogGroup: cloudformation.RefPtr(idLogGroup)},
		Environment: &lambda.Function_Environment{Variables: map[string]string{
			"HANDOVER_LEDGER":                ledgerURL(),
			"HANDOVER_QUEUE_URL":             cloudformation.Ref(idQueue),
			"HANDOVER_DEAD_LETTER_QUEUE_URL": cloudformation.Ref(idDeadLetterQueue),
			"HANDOVER_HOOK_PREFIX":           HookPrefix,
			"HANDOVER_FENCE":                 fenceVia,
		}},
	}
	r[idMapping] = &lambda.EventSourceMapping{
		EventSourceArn:        cloudformation.GetAttPtr(idQueue, "Arn"),
		FunctionName:          cloudformation.Ref(idFunction),
		BatchSize:             cloudformation.Int(10),
		FunctionResponseTypes: []string{"ReportBatchItemFailures"},
		Enabled:               cloudformation.Bool(true),
	}
	r[idSchedule] = &events.Rule{
		Description:        cloudformation.String("handover: reconcile and sweep every minute"),
		ScheduleExpression: cloudformation.String("rate(1 minute)"),
		State:              cloudformation.String("ENABLED"),
		Targets:            []events.Rule_Target{{Id: "handover-reconcile", Arn: cloudformation.GetAtt(idFunction, "Arn")}},
	}
	r[idPermission] = &lambda.Permission{
		Action:       "lambda:InvokeFunction",
		FunctionName: cloudformation.Ref(idFunction),
		Principal:    "events.amazonaws.com",
		SourceArn:    cloudformation.GetAttPtr(idSchedule, "Arn"),
	}
	t.Outputs["FunctionName"] = output(cloudformation.Ref(idFunction), "the controller function")
	t.Outputs["LogGroupName"] = output(cloudformation.Ref(idLogGroup), "the function's log group (aws logs tail NAME --follow)")
}

// addControllerRole adds the role and instance profile of a long-running
// controller, and the role's group update policy.
func addControllerRole(t *cloudformation.Template, policy, updates, releases PolicyDocument) {
	t.Resources[idRole] = &iam.Role{
		Description:              cloudformation.String("handover controller (long-running, on EC2 or ECS)"),
		AssumeRolePolicyDocument: controllerTrust(),
		Policies:                 []iam.Role_Policy{{PolicyName: "handover-controller", PolicyDocument: policy}},
	}
	t.Resources[idUpdatePolicy] = &iam.ManagedPolicy{
		Description:    cloudformation.String("handover controller: group updates (handover update)"),
		PolicyDocument: updates,
		Roles:          []string{cloudformation.Ref(idRole)},
	}
	t.Resources[idReleasePolicy] = &iam.ManagedPolicy{
		Description: cloudformation.String("handover controller: the release controller (handover controller --releases, " +
			"or handover release controller with this role), on release volumes and snapshots (handover:release-managed) only"),
		PolicyDocument: releases,
		Roles:          []string{cloudformation.Ref(idRole)},
	}
	t.Resources[idInstanceProfile] = &iam.InstanceProfile{Roles: []string{cloudformation.Ref(idRole)}}
	t.Outputs["InstanceProfileName"] = output(cloudformation.Ref(idInstanceProfile), "instance profile for a controller on EC2")
	t.Outputs["InstanceProfileArn"] = output(cloudformation.GetAtt(idInstanceProfile, "Arn"), "instance profile for a controller on EC2")
}

// addSignalPolicy adds the managed policy the groups' instance roles need
// for `handover signal`. The template does not attach it: the instance
// roles are the user's.
func addSignalPolicy(t *cloudformation.Template, cfg Config) {
	t.Resources[idSignalPolicy] = &iam.ManagedPolicy{
		Description: cloudformation.String("handover signal: lets an instance of the handover groups (or of their replace-all " +
			"successors) tag a group instance with handover:signal and handover:signal-reason; attach it to the instance role"),
		PolicyDocument: signalPolicy(cfg),
	}
	t.Outputs["InstanceSignalPolicyArn"] = output(cloudformation.Ref(idSignalPolicy),
		"managed policy to attach to the groups' instance role, for handover signal")
}

func output(v, desc string) cloudformation.Output {
	return cloudformation.Output{Value: v, Description: cloudformation.String(desc)}
}

func description(cfg Config) string {
	updates := "Group updates (handover update) need --mode controller: this deployment does not run them."
	if cfg.updates() {
		updates = "The role also runs group updates; its group permissions and Auto Scaling rules cover each group's " +
			"replace-all successors, GROUP-*."
	}
	return fmt.Sprintf("handover (%s mode) for %d Auto Scaling group(s): events queue and dead-letter queue, EventBridge rules, "+
		"DynamoDB ledger, lifecycle hooks and a least-privilege role. EBS and instance state-change events carry no group "+
		"name, so their rules match the whole region: see Metadata.Handover. %s", cfg.Mode, len(cfg.Groups), updates)
}

func metadataSection(cfg Config) map[string]any {
	dbs := map[string]string{}
	for _, g := range cfg.Groups {
		dbs[g] = cfg.database(g)
	}
	scope := "the named groups"
	if cfg.updates() {
		scope += " and their replace-all successors"
	}
	notes := []string{
		"The Auto Scaling rules are limited to " + scope + ". EBS Snapshot Notification, EBS Volume Notification and " +
			"EC2 Instance State-change Notification events carry no group name, so their rules match every snapshot, volume " +
			"and instance of the region, narrowed to the operations, results and states handover reads; the controller " +
			"ignores those no migration owns. Events are hints: reconcile reads the groups and is the truth.",
		"Deploying needs --capabilities CAPABILITY_IAM: the stack creates an IAM role.",
		"Volumes and snapshots encrypted with a customer managed KMS key also need kms:CreateGrant, kms:Decrypt and " +
			"kms:GenerateDataKeyWithoutPlaintext on that key for the role; the AWS managed aws/ebs key needs nothing more.",
		"The ledger table is retained when the stack is deleted: it records which volume is authoritative for each database.",
	}
	if cfg.updates() {
		notes = append(notes,
			"Group updates: a replace-all creates GROUP-ID (ID: 12 hex digits) in place of GROUP and deletes GROUP, so the "+
				"Auto Scaling rules also match every group name that starts with GROUP- and every group-scoped permission also names "+
				"GROUP-* (in IAM, which has no narrower pattern, any group so named). The lifecycle hooks stay on the named "+
				"groups: a replace-all copies them to the new group itself.",
			"Group updates add launch template versions and point groups at launch templates only for templates tagged "+
				UpdatableTag+"=true, and pass only the roles given with --instance-role (the roles of the templates' instance "+
				"profiles) to EC2.",
			"handover signal tags its instance: attach the managed policy of output InstanceSignalPolicyArn to the groups' "+
				"instance role.",
		)
	} else {
		notes = append(notes, "Group updates (handover update, handover signal) are driven by a long-running controller: "+
			"the Lambda deployment has no API to start one, so its role has none of their permissions; use --mode controller.")
	}
	md := map[string]any{
		"Mode":                    string(cfg.Mode),
		"Groups":                  cfg.Groups,
		"Databases":               dbs,
		"HeartbeatTimeoutSeconds": int(cfg.HeartbeatTimeout.Seconds()),
		"HookNames":               []string{LaunchHook, TerminateHook},
		"Ledger": map[string]string{
			"PartitionKey": LedgerPartitionKey,
			"SortKey":      LedgerSortKey,
			"TTLAttribute": LedgerTTLAttribute,
		},
		"Notes": notes,
	}
	if cfg.updates() {
		md["UpdatableLaunchTemplateTag"] = map[string]string{"Key": UpdatableTag, "Value": "true"}
		md["InstanceRoles"] = append([]string{}, cfg.InstanceRoles...)
	}
	return md
}

// logicalID names a per-group resource: the group name's letters and
// digits for a reader, and a hash of the whole name, because group names
// may differ only in characters a logical id cannot hold.
func logicalID(prefix, group string) string {
	var b strings.Builder
	b.WriteString(prefix)
	upper := true
	for _, r := range group {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if upper {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			upper = false
		default:
			upper = true
		}
		if b.Len() >= 200 {
			break
		}
	}
	sum := sha256.Sum256([]byte(group))
	b.WriteString(hex.EncodeToString(sum[:4]))
	return b.String()
}
