package deploy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func(edit func(*Config)) Config {
		c := DefaultConfig()
		c.Groups = []string{"orders-asg"}
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
		want  string
	}{
		{"no groups", ok(func(c *Config) { c.Groups = nil }), "groups", "no Auto Scaling group named"},
		{"empty group", ok(func(c *Config) { c.Groups = []string{""} }), "groups", "1 to 255 characters"},
		{"long group", ok(func(c *Config) { c.Groups = []string{strings.Repeat("g", 256)} }), "groups", "1 to 255 characters"},
		{"colon", ok(func(c *Config) { c.Groups = []string{"a:b"} }), "groups", "colon"},
		{"space", ok(func(c *Config) { c.Groups = []string{"a b"} }), "groups", "printable ASCII"},
		{"non-ASCII", ok(func(c *Config) { c.Groups = []string{"grüße"} }), "groups", "printable ASCII"},
		{"twice", ok(func(c *Config) { c.Groups = []string{"a", "a"} }), "groups", `"a" is named twice`},
		{"encoded intrinsic", ok(func(c *Config) { c.Groups = []string{"eyJSZWYiOiJYIn0="} }), "groups", "encoded CloudFormation function"},
		{"database of an unknown group", ok(func(c *Config) { c.Databases = map[string]string{"billing-asg": "billing"} }), "databases", `group "billing-asg": that group is not among`},
		{"database with a slash", ok(func(c *Config) { c.Databases = map[string]string{"orders-asg": "a/b"} }), "databases", "without spaces or slashes"},
		{"database with a space", ok(func(c *Config) { c.Databases = map[string]string{"orders-asg": "a b"} }), "databases", "without spaces or slashes"},
		{"long database", ok(func(c *Config) { c.Databases = map[string]string{"orders-asg": strings.Repeat("d", 129)} }), "databases", "1 to 128 characters"},
		{"group name unfit as database", ok(func(c *Config) { c.Groups = []string{"orders/asg"} }), "databases", "without spaces or slashes"},
		{"heartbeat too short", ok(func(c *Config) { c.HeartbeatTimeout = 29 * time.Second }), "heartbeat-timeout", "from 30s to 2h0m0s"},
		{"heartbeat too long", ok(func(c *Config) { c.HeartbeatTimeout = 7201 * time.Second }), "heartbeat-timeout", "from 30s to 2h0m0s"},
		{"heartbeat fraction", ok(func(c *Config) { c.HeartbeatTimeout = 90500 * time.Millisecond }), "heartbeat-timeout", "whole seconds"},
		{"mode", ok(func(c *Config) { c.Mode = "ecs" }), "mode", `"ecs" is not a mode: use lambda or controller`},
		{"instance role in lambda mode", ok(func(c *Config) { c.InstanceRoles = []string{"orders-instance"} }), "instance-roles", "only --mode controller runs"},
		{"instance role ARN", ok(func(c *Config) {
			c.Mode, c.InstanceRoles = ModeController, []string{"arn:aws:iam::123456789012:role/orders-instance"}
		}), "instance-roles", "not its ARN"},
		{"instance role wildcard", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{"orders-*"} }), "instance-roles", `found '*'`},
		{"instance role variable", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{"${aws:username}"} }), "instance-roles", `found '$'`},
		{"instance role path", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{"/app/orders"} }), "instance-roles", "no empty segments"},
		{"instance role long", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{strings.Repeat("r", 65)} }), "instance-roles", "1 to 64"},
		{"instance role twice", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{"r", "r"} }), "instance-roles", `"r" is named twice`},
		{"instance role intrinsic", ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{"eyJSZWYiOiJYIn0="} }), "instance-roles", "encoded CloudFormation function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%#v), want a %s error containing %q", err, fe, tc.field, tc.want)
			}
			if _, err := Template(tc.cfg); err == nil {
				t.Error("Template accepted what Validate refuses")
			}
		})
	}
	for _, edge := range []time.Duration{30 * time.Second, 7200 * time.Second} {
		if err := ok(func(c *Config) { c.HeartbeatTimeout = edge }).Validate(); err != nil {
			t.Errorf("heartbeat %s: %v", edge, err)
		}
	}
	for _, r := range []string{"orders-instance", "app/team_2/Orders+Role=1,a.b@c"} {
		if err := ok(func(c *Config) { c.Mode, c.InstanceRoles = ModeController, []string{r} }).Validate(); err != nil {
			t.Errorf("instance role %q: %v", r, err)
		}
	}
	if !errors.Is(ok(func(c *Config) { c.Groups = nil }).Validate(), ErrNoGroups) {
		t.Error("no groups is not ErrNoGroups")
	}
}

func TestParseDatabase(t *testing.T) {
	for _, tc := range []struct{ in, group, db, err string }{
		{in: "orders-asg=orders", group: "orders-asg", db: "orders"},
		{in: "a=b=c", group: "a", db: "b=c"},
		{in: "orders", err: "not GROUP=DATABASE"},
		{in: "=orders", err: "not GROUP=DATABASE"},
		{in: "orders-asg=", err: "not GROUP=DATABASE"},
		{in: "", err: "not GROUP=DATABASE"},
	} {
		g, db, err := ParseDatabase(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDatabase(%q) = %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || g != tc.group || db != tc.db {
			t.Errorf("ParseDatabase(%q) = %q, %q, %v", tc.in, g, db, err)
		}
	}
}

// Whatever a user names a group or a database, the template either refuses
// it or carries it unchanged into the hooks, valid JSON throughout.
func FuzzTemplateNames(f *testing.F) {
	for _, s := range [][2]string{
		{"orders-asg", "orders"}, {"db*$?{x}", "d"}, {"a,b", "a,b"}, {"${AWS::Region}", "x"},
		{"eyJSZWYiOiJYIn0=", "eyJSZWYiOiJYIn0="}, {`"quoted"`, `{"database":"x"}`}, {"a\\b", "b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, group, db string) {
		c := DefaultConfig()
		c.Groups = []string{group}
		c.Databases = map[string]string{group: db}
		b, err := Template(c)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		var tmpl struct {
			Resources map[string]struct {
				Type       string
				Properties struct {
					AutoScalingGroupName string
					NotificationMetadata string
				}
			}
		}
		if err := json.Unmarshal(b, &tmpl); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		hooks := 0
		for _, r := range tmpl.Resources {
			if r.Type != "AWS::AutoScaling::LifecycleHook" {
				continue
			}
			hooks++
			var md struct{ Database string }
			if r.Properties.AutoScalingGroupName != group || json.Unmarshal([]byte(r.Properties.NotificationMetadata), &md) != nil || md.Database != db {
				t.Fatalf("hook %+v does not carry group %q and database %q", r.Properties, group, db)
			}
		}
		if hooks != 2 {
			t.Fatalf("%d hooks", hooks)
		}
	})
}
