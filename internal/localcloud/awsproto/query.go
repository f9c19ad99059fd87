package awsproto

import (
	"context"
	"encoding/xml"
	"log/slog"
	"net/http"
)

// FaultInjector is what a Query dispatcher asks before every call
// (faults.Injector is one). Inject sleeps for latency faults and returns
// the error of a throttle or error fault, nil otherwise.
type FaultInjector interface {
	Inject(ctx context.Context, service, action string) error
}

// Action is one Query-protocol action's handler: the parsed request in,
// the result to write (or an error in AWS's terms) out.
type Action[R any] func(ctx context.Context, v Values) (R, error)

// Query is the one dispatcher of the Query-protocol services (EC2, Auto
// Scaling, ELBv2, RDS). Every request goes through the same steps, so the
// services cannot drift apart on what a bad request gets:
//
//	method and form parsing → action lookup → Version check → injected
//	faults → Before (the service's own gate: throttling, DryRun) →
//	the handler → logging → the response or error document.
//
// R is the service's result type; WriteResult and WriteError give the
// service's envelope and error shape.
type Query[R any] struct {
	// Service names the service to the fault injector and in logs
	// ("ec2", "autoscaling", "elasticloadbalancing", "rds").
	Service string
	// Version is the one API version served. A request naming another
	// gets InvalidAction, as AWS answers for an operation unknown in
	// that version; a request with none is served.
	Version string
	Actions map[string]Action[R]
	// Faults may be nil.
	Faults FaultInjector
	// MapFault, when set, turns an injected error into the service's own
	// shape (Auto Scaling calls a server fault InternalFailure).
	MapFault func(error) error
	// Before, when set, runs after the faults and before the handler.
	Before      func(ctx context.Context, action string, v Values) error
	WriteResult func(w http.ResponseWriter, action string, result R)
	WriteError  func(w http.ResponseWriter, err error)
	Log         *slog.Logger
}

// ServeHTTP answers one Query-protocol request.
func (q *Query[R]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action, result, err := q.dispatch(r)
	if err != nil {
		e := AsError(err)
		log := q.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		if e.Status >= 500 {
			log.Warn("api call failed", "action", action, "code", e.Code, "error", e.Message)
		} else {
			log.Debug("api call refused", "action", action, "code", e.Code, "error", e.Message)
		}
		q.WriteError(w, e)
		return
	}
	q.WriteResult(w, action, result)
}

func (q *Query[R]) dispatch(r *http.Request) (action string, result R, err error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "", result, &Error{Code: "InvalidAction", Message: "Unsupported HTTP method " + r.Method + "; the Query protocol takes POST (or GET).", Status: http.StatusMethodNotAllowed}
	}
	v, err := ParseQuery(r)
	if err != nil {
		return "", result, err
	}
	action = v.Action()
	h, ok := q.Actions[action]
	switch {
	case action == "":
		return "", result, Errorf("MissingAction", "The request must contain the parameter Action")
	case !ok:
		return action, result, Errorf("InvalidAction", "The action %s is not valid for this web service.", truncate(action, 64))
	}
	if ver := v.Get("Version"); ver != "" && ver != q.Version {
		return action, result, Errorf("InvalidAction", "Could not find operation %s for version %s; this endpoint speaks %s.", action, truncate(ver, 32), q.Version)
	}
	if q.Faults != nil {
		if err := q.Faults.Inject(r.Context(), q.Service, action); err != nil {
			if q.MapFault != nil {
				err = q.MapFault(err)
			}
			return action, result, err
		}
	}
	if q.Before != nil {
		if err := q.Before(r.Context(), action, v); err != nil {
			return action, result, err
		}
	}
	result, err = h(r.Context(), v)
	return action, result, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WriteQueryResult writes the awsquery success envelope:
// <ActionResponse xmlns><ActionResult>result</ActionResult><ResponseMetadata/>.
// The result element is named after the action, which struct tags cannot
// express; a nil result writes no result element.
func WriteQueryResult(w http.ResponseWriter, xmlns, action string, result any) {
	WriteXML(w, http.StatusOK, queryEnvelope{name: action, xmlns: xmlns, result: result, meta: NewResponseMetadata()})
}

type queryEnvelope struct {
	name, xmlns string
	result      any
	meta        ResponseMetadata
}

func (e queryEnvelope) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Local: e.name + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: e.xmlns}}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if e.result != nil {
		if err := enc.EncodeElement(e.result, xml.StartElement{Name: xml.Name{Local: e.name + "Result"}}); err != nil {
			return err
		}
	}
	if err := enc.EncodeElement(e.meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	return enc.EncodeToken(start.End())
}
