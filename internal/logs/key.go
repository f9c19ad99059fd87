package logs

import (
	"fmt"
	"path"
	"strings"
)

// KeyKind says what an object key names.
type KeyKind struct {
	Format Format
	// Skip, when set, is why the object is not indexed (ELB's test file,
	// or a connection log without --connection-logs).
	Skip string
}

// DetectKey reads the format from an object key as ELB names its files:
//
//	…/AWSLogs/ACCOUNT/elasticloadbalancing/REGION/yyyy/mm/dd/ACCOUNT_elasticloadbalancing_REGION_app.NAME.ID_END_IP_RANDOM.log.gz  (ALB)
//	…_net.NAME.ID_END_RANDOM.log.gz                         (NLB)
//	…_NAME_END_IP_RANDOM.log                                (Classic)
//	…/conn_log.ACCOUNT_elasticloadbalancing_…_app.…log.gz   (ALB connection log)
//	…/AWSLogs/ACCOUNT/ELBAccessLogTestFile                  (written when logging is turned on)
//
// A key that is none of these is an error saying so.
func DetectKey(key string, connectionLogs bool) (KeyKind, error) {
	base := path.Base(key)
	if base == "ELBAccessLogTestFile" {
		return KeyKind{Skip: "ELB's access-log test file (written when access logging is turned on)"}, nil
	}
	conn := strings.HasPrefix(base, "conn_log.")
	_, rest, ok := strings.Cut(base, "_elasticloadbalancing_")
	if !ok {
		return KeyKind{}, fmt.Errorf("%q is not an ELB access-log key: its name has no _elasticloadbalancing_ part (ELB writes ACCOUNT_elasticloadbalancing_REGION_…)", key)
	}
	// REGION_ then the load balancer part.
	_, lb, ok := strings.Cut(rest, "_")
	if !ok {
		return KeyKind{}, fmt.Errorf("%q is not an ELB access-log key: nothing follows the region", key)
	}
	switch {
	case conn:
		if !connectionLogs {
			return KeyKind{Format: FormatConnection, Skip: "an ALB connection log (index them with --connection-logs)"}, nil
		}
		return KeyKind{Format: FormatConnection}, nil
	case strings.HasPrefix(lb, "app."):
		return KeyKind{Format: FormatALB}, nil
	case strings.HasPrefix(lb, "net."):
		return KeyKind{Format: FormatNLB}, nil
	case strings.HasSuffix(base, ".log") || strings.HasSuffix(base, ".log.gz"):
		return KeyKind{Format: FormatClassic}, nil
	}
	return KeyKind{}, fmt.Errorf("%q is not an ELB access-log key: it does not end in .log or .log.gz", key)
}
