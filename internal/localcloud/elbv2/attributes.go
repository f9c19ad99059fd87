package elbv2

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Attribute keys the service acts on; the others are stored and reported
// so that tools which set them keep working.
const (
	attrAccessLogsEnabled   = "access_logs.s3.enabled"
	attrAccessLogsBucket    = "access_logs.s3.bucket"
	attrAccessLogsPrefix    = "access_logs.s3.prefix"
	attrDeletionProtection  = "deletion_protection.enabled"
	attrDeregistrationDelay = "deregistration_delay.timeout_seconds"
)

// attrSpec says what values a key accepts and its default.
type attrSpec struct {
	def   string
	check func(string) bool
}

func isBool(v string) bool { return v == "true" || v == "false" }

func intIn(lo, hi int) func(string) bool {
	return func(v string) bool {
		n, err := strconv.Atoi(v)
		return err == nil && n >= lo && n <= hi
	}
}

func oneOf(vals ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(vals, v) }
}

func anyString(string) bool { return true }

// The Application Load Balancer attributes, with AWS's defaults.
var lbAttrSpecs = map[string]attrSpec{
	attrAccessLogsEnabled:                                      {"false", isBool},
	attrAccessLogsBucket:                                       {"", anyString},
	attrAccessLogsPrefix:                                       {"", func(v string) bool { return !strings.Contains(v, "AWSLogs") }},
	attrDeletionProtection:                                     {"false", isBool},
	"idle_timeout.timeout_seconds":                             {"60", intIn(1, 4000)},
	"client_keep_alive.seconds":                                {"3600", intIn(60, 604800)},
	"connection_logs.s3.enabled":                               {"false", isBool},
	"connection_logs.s3.bucket":                                {"", anyString},
	"connection_logs.s3.prefix":                                {"", anyString},
	"routing.http.desync_mitigation_mode":                      {"defensive", oneOf("monitor", "defensive", "strictest")},
	"routing.http.drop_invalid_header_fields.enabled":          {"false", isBool},
	"routing.http.preserve_host_header.enabled":                {"false", isBool},
	"routing.http.x_amzn_tls_version_and_cipher_suite.enabled": {"false", isBool},
	"routing.http.xff_client_port.enabled":                     {"false", isBool},
	"routing.http.xff_header_processing.mode":                  {"append", oneOf("append", "preserve", "remove")},
	"routing.http2.enabled":                                    {"true", isBool},
	"waf.fail_open.enabled":                                    {"false", isBool},
	"zonal_shift.config.enabled":                               {"false", isBool},
}

// The target group attributes of an instance/ip HTTP target group.
var tgAttrSpecs = map[string]attrSpec{
	attrDeregistrationDelay:                  {"300", intIn(0, 3600)},
	"stickiness.enabled":                     {"false", isBool},
	"stickiness.type":                        {"lb_cookie", oneOf("lb_cookie", "app_cookie")},
	"stickiness.lb_cookie.duration_seconds":  {"86400", intIn(1, 604800)},
	"stickiness.app_cookie.cookie_name":      {"", anyString},
	"stickiness.app_cookie.duration_seconds": {"86400", intIn(1, 604800)},
	"load_balancing.algorithm.type":          {"round_robin", oneOf("round_robin", "least_outstanding_requests", "weighted_random")},
	"load_balancing.cross_zone.enabled":      {"use_load_balancer_configuration", oneOf("true", "false", "use_load_balancer_configuration")},
	"slow_start.duration_seconds":            {"0", intIn(0, 900)},
}

func defaults(specs map[string]attrSpec) map[string]string {
	m := make(map[string]string, len(specs))
	for k, s := range specs {
		m[k] = s.def
	}
	return m
}

func defaultLBAttributes() map[string]string { return defaults(lbAttrSpecs) }
func defaultTGAttributes() map[string]string { return defaults(tgAttrSpecs) }

// kv is one attribute as the API carries it.
type kv struct{ Key, Value string }

// applyAttributes validates every change before applying any, so a bad key
// leaves the resource as it was.
func applyAttributes(specs map[string]attrSpec, cur map[string]string, changes []kv, kind string) (map[string]string, error) {
	if len(changes) == 0 {
		return nil, errValidation("At least one attribute must be specified")
	}
	next := maps.Clone(cur)
	for _, c := range changes {
		spec, ok := specs[c.Key]
		if !ok {
			return nil, errValidation("%s attribute key '%s' is not recognized", kind, c.Key)
		}
		if !spec.check(c.Value) {
			return nil, errValidation("%s attribute '%s' does not accept the value '%s'", kind, c.Key, c.Value)
		}
		next[c.Key] = c.Value
	}
	return next, nil
}

// sortedAttributes lists attrs by key, the stable order Describe* uses.
func sortedAttributes(attrs map[string]string) []kv {
	out := make([]kv, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		out = append(out, kv{k, attrs[k]})
	}
	return out
}

// deregistrationDelay is how long a deregistered target of tg drains.
func (tg *targetGroup) deregistrationDelay() time.Duration {
	n, err := strconv.Atoi(tg.Attributes[attrDeregistrationDelay])
	if err != nil {
		n = 300
	}
	return time.Duration(n) * time.Second
}

// accessLogs returns where lb's access logs go, or ok=false when they are
// off.
func (lb *loadBalancer) accessLogs() (bucket, prefix string, ok bool) {
	if lb.Attributes[attrAccessLogsEnabled] != "true" || lb.Attributes[attrAccessLogsBucket] == "" {
		return "", "", false
	}
	return lb.Attributes[attrAccessLogsBucket], lb.Attributes[attrAccessLogsPrefix], true
}
