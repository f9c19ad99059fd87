package localcloud

import (
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Service names, as they appear in a SigV4 credential scope.
const (
	ServiceEC2         = "ec2"
	ServiceAutoScaling = "autoscaling"
	ServiceELB         = "elasticloadbalancing"
	ServiceSQS         = "sqs"
	ServiceEvents      = "events"
	ServiceS3          = "s3"
	ServiceRDS         = "rds"
)

// queryVersions maps a Query-protocol Version to its service, for requests
// that carry no signature.
var queryVersions = map[string]string{
	"2016-11-15": ServiceEC2,
	"2011-01-01": ServiceAutoScaling,
	"2015-12-01": ServiceELB,
	"2012-11-05": ServiceSQS,
	"2014-10-31": ServiceRDS,
}

// ServiceOf tells which service a request is for: from the SigV4 credential
// scope (header or presigned query), else from X-Amz-Target, else from the
// Query protocol's Version. It returns "" when nothing says.
func ServiceOf(r *http.Request) string {
	if _, scope := credential(r); scope != "" {
		// AKID/DATE/REGION/SERVICE/aws4_request
		parts := strings.Split(scope, "/")
		if len(parts) == 5 {
			return parts[3]
		}
	}
	switch target := r.Header.Get("X-Amz-Target"); {
	case strings.HasPrefix(target, "AmazonSQS."):
		return ServiceSQS
	case strings.HasPrefix(target, "AWSEvents."):
		return ServiceEvents
	}
	if v := r.URL.Query().Get("Version"); queryVersions[v] != "" {
		return queryVersions[v]
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err == nil && queryVersions[r.PostForm.Get("Version")] != "" {
			return queryVersions[r.PostForm.Get("Version")]
		}
	}
	return ""
}

// credential returns the access key id and the whole credential scope of a
// SigV4-signed request.
func credential(r *http.Request) (accessKey, scope string) {
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential="); ok {
				scope = v
			}
		}
	} else if v := r.URL.Query().Get("X-Amz-Credential"); v != "" {
		scope, _ = url.QueryUnescape(v)
		if scope == "" {
			scope = v
		}
	}
	accessKey, _, _ = strings.Cut(scope, "/")
	return accessKey, scope
}

// Router sends each request to its service's handler and, when access keys
// are required, refuses requests signed with any other.
type Router struct {
	Services map[string]http.Handler
	// AccessKeys, when non-empty, are the only access key ids accepted.
	AccessKeys map[string]bool
	// Admin serves /_localcloud/ (faults, instances, zones). S3 bucket
	// names cannot start with "_", so the prefix never shadows a bucket.
	Admin http.Handler
	// OpenSearch serves the OpenSearch-compatible domain under
	// OpenSearchPrefix (the whole path, prefix included).
	OpenSearch http.Handler
}

// OpenSearchPrefix is where the OpenSearch-compatible endpoint lives: a
// client's address is http://HOST:PORT/_opensearch. Like the admin prefix
// it cannot shadow a bucket.
const OpenSearchPrefix = "/_opensearch"

func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_localcloud/") && rt.Admin != nil {
		rt.Admin.ServeHTTP(w, r)
		return
	}
	svc := ServiceOf(r)
	if rt.OpenSearch != nil && (r.URL.Path == OpenSearchPrefix || strings.HasPrefix(r.URL.Path, OpenSearchPrefix+"/")) {
		if key, _ := credential(r); len(rt.AccessKeys) > 0 && !rt.AccessKeys[key] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"message":"The security token included in the request is invalid: this local cloud was started with --require-credentials; sign requests to the OpenSearch endpoint with SigV4 (service es) and a known access key."}`)
			return
		}
		rt.OpenSearch.ServeHTTP(w, r)
		return
	}
	if len(rt.AccessKeys) > 0 {
		if key, _ := credential(r); !rt.AccessKeys[key] {
			writeError(w, svc, &awsproto.Error{Code: invalidKeyCode(svc), Status: http.StatusForbidden,
				Message: "The security token included in the request is invalid: this local cloud was started with --require-credentials and does not know access key " + quote(key) + "."})
			return
		}
	}
	h := rt.Services[svc]
	if h == nil {
		writeError(w, svc, awsproto.Errorf("UnknownService", "this local cloud does not serve %s; it serves ec2, autoscaling, elasticloadbalancing, sqs, events, s3 and rds (is the request signed with the right service name?)", quote(svc)))
		return
	}
	h.ServeHTTP(w, r)
}

func quote(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func invalidKeyCode(svc string) string {
	if svc == ServiceS3 {
		return "InvalidAccessKeyId"
	}
	if svc == ServiceEC2 {
		return "AuthFailure"
	}
	return "UnrecognizedClientException"
}

// writeError answers in the error shape of the service the request was for.
func writeError(w http.ResponseWriter, svc string, err error) {
	switch svc {
	case ServiceEC2:
		awsproto.WriteEC2Error(w, err)
	case ServiceEvents:
		awsproto.WriteJSONError(w, "application/x-amz-json-1.1", "", err)
	case ServiceSQS:
		awsproto.WriteJSONError(w, "application/x-amz-json-1.0", "", err)
	default:
		awsproto.WriteQueryError(w, "", err)
	}
}
