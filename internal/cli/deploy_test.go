package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/deploy"
)

// runDeploy runs "handover deploy …" through a root like newRoot's, so the
// tests do not depend on where the root wires the command in.
func runDeploy(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := &cobra.Command{Use: "handover", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newDeploy(&out, &errb))
	root.SetArgs(append([]string{"deploy"}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errb.WriteString("handover: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), code
}

var deployGroups = []string{"template", "--group", "orders-b", "--group", "orders-a", "--database", "orders-a=orders"}

// The templates are golden files: a change to what handover deploys, or to
// the permissions it asks for, shows up as a diff to review.
func TestDeployTemplateGolden(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		roles []string // --instance-role: controller mode only
	}{{"lambda", nil}, {"controller", []string{"orders-instance"}}} {
		mode := tc.mode
		t.Run(mode, func(t *testing.T) {
			args := append(append([]string{}, deployGroups...), "--mode", mode)
			for _, r := range tc.roles {
				args = append(args, "--instance-role", r)
			}
			out, errOut, code := runDeploy(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "deploy-template-"+mode+".json", out)

			cfg := deploy.DefaultConfig()
			cfg.Mode, cfg.Groups, cfg.Databases = deploy.Mode(mode), []string{"orders-a", "orders-b"}, map[string]string{"orders-a": "orders"}
			cfg.InstanceRoles = tc.roles
			want, err := deploy.Template(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Error("the command's output differs from deploy.Template for the same configuration")
			}
		})
	}
}

// --logs prints the log pipeline's stack, golden as the controller's.
func TestDeployTemplateLogsGolden(t *testing.T) {
	for _, trigger := range []string{deploy.TriggerSQS, deploy.TriggerDirect, deploy.TriggerDaemon} {
		t.Run(trigger, func(t *testing.T) {
			out, errOut, code := runDeploy(t, "template", "--logs", "--logs-trigger", trigger)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "deploy-template-logs-"+trigger+".json", out)
			want, err := deploy.LogsTemplate(deploy.LogsConfig{Trigger: trigger})
			if err != nil || out != string(want) {
				t.Errorf("the command's output differs from deploy.LogsTemplate (%v)", err)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "logs.json")
	out, errOut, code := runDeploy(t, "template", "--logs", "--output", path)
	if code != 0 || !strings.Contains(out, "wrote "+path) || !strings.Contains(out, "DomainArn=") {
		t.Errorf("--logs --output: exit %d, %s %s", code, out, errOut)
	}
}

func TestDeployTemplateDefaults(t *testing.T) {
	out, _, code := runDeploy(t, "template", "--group", "orders-asg")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`"Runtime": "provided.al2023"`, `"HeartbeatTimeout": 600`, `"NotificationMetadata": "{\"database\":\"orders-asg\"}"`} {
		if !strings.Contains(out, want) {
			t.Errorf("default template lacks %s", want)
		}
	}
	out, _, code = runDeploy(t, "template", "--group", "orders-asg", "--heartbeat-timeout", "30m")
	if code != 0 || !strings.Contains(out, `"HeartbeatTimeout": 1800`) {
		t.Errorf("--heartbeat-timeout 30m: exit %d, no HeartbeatTimeout 1800", code)
	}
}

func TestDeployTemplateOutputFile(t *testing.T) {
	stdoutTmpl, _, _ := runDeploy(t, deployGroups...)
	path := filepath.Join(t.TempDir(), "handover.json")
	out, errOut, code := runDeploy(t, append(deployGroups, "--output", path)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != stdoutTmpl {
		t.Error("the file differs from what stdout gets")
	}
	if !strings.Contains(out, "wrote "+path) || !strings.Contains(out, "--capabilities CAPABILITY_IAM") || !strings.Contains(out, "CodeS3Bucket=") {
		t.Errorf("stdout should say what was written and how to deploy it:\n%s", out)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if _, errOut, code := runDeploy(t, append(deployGroups, "--output", filepath.Join(path, "sub", "x.json"))...); code == 0 || !strings.Contains(errOut, "--output") {
		t.Errorf("unwritable --output: exit %d, %s", code, errOut)
	}
}

func TestDeployTemplateBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"template"}, "--group is required"},
		{[]string{"template", "--mode", "lambda"}, "--group is required"},
		{[]string{"template", "--group", "a:b"}, "--group: group name \"a:b\": AWS does not allow a colon"},
		{[]string{"template", "--group", strings.Repeat("g", 256)}, "AWS allows 1 to 255 characters"},
		{[]string{"template", "--group", "a", "--group", "a"}, `--group: group "a" is named twice`},
		{[]string{"template", "--group", "a", "--database", "orders"}, `--database "orders" is not GROUP=DATABASE`},
		{[]string{"template", "--group", "a", "--database", "b=orders"}, `--database: database for group "b": that group is not among the groups named (a)`},
		{[]string{"template", "--group", "a", "--database", "a=x/y"}, `--database: database of group "a"`},
		{[]string{"template", "--group", "a", "--database", "a=x", "--database", "a=y"}, `group "a" is given two databases`},
		{[]string{"template", "--group", "a", "--heartbeat-timeout", "10s"}, "--heartbeat-timeout: heartbeat timeout 10s is outside what AWS accepts: whole seconds from 30s to 2h0m0s"},
		{[]string{"template", "--group", "a", "--heartbeat-timeout", "3h"}, "from 30s to 2h0m0s"},
		{[]string{"template", "--group", "a", "--heartbeat-timeout", "ten"}, `invalid argument "ten" for "--heartbeat-timeout"`},
		{[]string{"template", "--group", "a", "--mode", "ecs"}, `--mode: "ecs" is not a mode: use lambda or controller`},
		{[]string{"template", "--group", "a", "--output", "json"}, "here --output names the file to write"},
		{[]string{"template", "--group", "a", "--instance-role", "orders-instance"}, "--instance-role: instance roles are for group updates, which only --mode controller runs"},
		{[]string{"template", "--group", "a", "--mode", "controller", "--instance-role", "arn:aws:iam::123456789012:role/r"}, "--instance-role: role \"arn:aws:iam::123456789012:role/r\": give the role's name"},
		{[]string{"template", "--group", "a", "--fence", "rpc"}, `--fence: "rpc" is not a fence`},
		{[]string{"template", "--group", "a", "extra"}, `unknown command "extra"`},
		{[]string{"template", "--logs", "--group", "a"}, "--group is for the controller's stack, --logs prints the log pipeline's own"},
		{[]string{"template", "--logs", "--mode", "controller"}, "--mode is for the controller's stack"},
		{[]string{"template", "--logs", "--logs-trigger", "sns"}, `--logs-trigger: "sns" is not a trigger: use sqs`},
		{[]string{"template", "--group", "a", "--logs-trigger", "direct"}, "--logs-trigger is for the log pipeline's stack: add --logs"},
		{[]string{"template", "--logs", "--output", "json"}, "here --output names the file to write"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runDeploy(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
			if out != "" {
				t.Errorf("a refused command printed to stdout: %q", out)
			}
		})
	}
}

func TestDeployHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"template", "--help"}} {
		out, _, code := runDeploy(t, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "handover deploy template --group") {
			t.Errorf("deploy %v: exit %d, no examples:\n%s", args, code, out)
		}
	}
}

// The default heartbeat the flag shows is the package's.
func TestDeployFlagDefaults(t *testing.T) {
	cmd := newDeployTemplate(&bytes.Buffer{}, &bytes.Buffer{})
	if got := cmd.Flags().Lookup("heartbeat-timeout").DefValue; got != (10 * time.Minute).String() {
		t.Errorf("--heartbeat-timeout default %s", got)
	}
	if got := cmd.Flags().Lookup("mode").DefValue; got != "lambda" {
		t.Errorf("--mode default %s", got)
	}
}
