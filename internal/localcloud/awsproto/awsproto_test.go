package awsproto

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func values(raw string) Values {
	v, _ := url.ParseQuery(raw)
	return Values{v}
}

func TestLists(t *testing.T) {
	for _, tc := range []struct {
		name, raw, prefix string
		want              []string
	}{
		{"ec2 list in order", "VolumeId.2=vol-b&VolumeId.1=vol-a&VolumeId.10=vol-j", "VolumeId", []string{"vol-a", "vol-b", "vol-j"}},
		{"awsquery member list", "Names.member.1=a&Names.member.2=b", "Names.member", []string{"a", "b"}},
		{"absent", "Other=1", "VolumeId", nil},
		{"zero and junk indices ignored", "VolumeId.0=x&VolumeId.a=y&VolumeId.1=ok", "VolumeId", []string{"ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := values(tc.raw).List(tc.prefix); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		})
	}
}

func TestStructs(t *testing.T) {
	v := values("Filter.1.Name=tag:db&Filter.1.Value.1=orders&Filter.1.Value.2=users&Filter.2.Name=status&Filter.2.Value.1=available")
	fs := v.Structs("Filter")
	if len(fs) != 2 {
		t.Fatalf("want 2 filters, got %d", len(fs))
	}
	if fs[0].Get("Name") != "tag:db" || !reflect.DeepEqual(fs[0].List("Value"), []string{"orders", "users"}) {
		t.Errorf("filter 1: %v", fs[0].Values)
	}
	if fs[1].Get("Name") != "status" || !reflect.DeepEqual(fs[1].List("Value"), []string{"available"}) {
		t.Errorf("filter 2: %v", fs[1].Values)
	}
}

func TestScalars(t *testing.T) {
	v := values("Size=8&Bad=x&Force=true")
	if n, err := v.Int("Size", 0); err != nil || n != 8 {
		t.Errorf("Int = %d, %v", n, err)
	}
	if _, err := v.Int("Bad", 0); err == nil || AsError(err).Code != "InvalidParameterValue" {
		t.Errorf("bad int: %v", err)
	}
	if b, err := v.Bool("Force", false); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if _, err := v.String("VolumeId", true); err == nil || AsError(err).Code != "MissingParameter" || !strings.Contains(err.Error(), "VolumeId") {
		t.Errorf("missing parameter: %v", err)
	}
}

func TestErrorShapes(t *testing.T) {
	t.Run("ec2", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteEC2Error(rec, Errorf("InvalidVolume.NotFound", "The volume 'vol-1' does not exist."))
		var doc struct {
			Errors []struct{ Code, Message string } `xml:"Errors>Error"`
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 400 || doc.Errors[0].Code != "InvalidVolume.NotFound" {
			t.Errorf("status %d, %+v, %v\n%s", rec.Code, doc, err, rec.Body)
		}
	})
	t.Run("query", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteQueryError(rec, "http://autoscaling.amazonaws.com/doc/2011-01-01/", Internal("boom"))
		var doc struct {
			Type string `xml:"Error>Type"`
			Code string `xml:"Error>Code"`
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 500 || doc.Type != "Receiver" || doc.Code != "InternalError" {
			t.Errorf("status %d, %+v, %v", rec.Code, doc, err)
		}
	})
	t.Run("json", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteJSONError(rec, "application/x-amz-json-1.0", "com.amazonaws.sqs#", Errorf("QueueDoesNotExist", "no queue"), "AWS.SimpleQueueService.NonExistentQueue")
		var doc map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc["__type"] != "com.amazonaws.sqs#QueueDoesNotExist" ||
			rec.Header().Get("x-amzn-query-error") != "AWS.SimpleQueueService.NonExistentQueue;Sender" {
			t.Errorf("%v %v %v", doc, err, rec.Header())
		}
	})
}

func TestJSONTarget(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"QueueName":"q"}`))
	r.Header.Set("X-Amz-Target", "AmazonSQS.CreateQueue")
	p, op, body, err := JSONTarget(r)
	if err != nil || p != "AmazonSQS" || op != "CreateQueue" || string(body) != `{"QueueName":"q"}` {
		t.Errorf("%q %q %q %v", p, op, body, err)
	}
	r = httptest.NewRequest(http.MethodPost, "/", nil)
	if _, _, _, err := JSONTarget(r); err == nil {
		t.Error("missing X-Amz-Target must be refused")
	}
}

// FuzzValues: no request, however malformed, panics the parsers.
func FuzzValues(f *testing.F) {
	f.Add("Filter.1.Name=a&Filter.1.Value.1=b&VolumeId.1=v")
	f.Add("A.member.99999999999999999999=x&A.member.-1=y")
	f.Fuzz(func(t *testing.T, raw string) {
		v := values(raw)
		_ = v.List("VolumeId")
		for _, s := range v.Structs("Filter") {
			_ = s.List("Value")
		}
		_, _ = v.Int("MaxResults", 0)
		_, _ = v.Bool("DryRun", false)
	})
}
