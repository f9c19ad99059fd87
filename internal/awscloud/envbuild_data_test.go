package awscloud

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fill sets every exported field reachable from v to a non-zero value.
func fill(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Float64, reflect.Float32:
		v.SetFloat(1.5)
	}
}

// leaves lists the paths of m's leaf values.
func leaves(prefix string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			leaves(prefix+"."+k, e, out)
		}
	case []any:
		for _, e := range x {
			leaves(prefix+"[]", e, out)
		}
	default:
		out[prefix] = x
	}
}

func jsonLeaves(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	leaves("", m, out)
	return out
}

// TestRequestTemplateData: every setting of a launch template EC2
// describes reaches the create, value for value; what does not is only
// what EC2 describes but a create cannot set.
func TestRequestTemplateData(t *testing.T) {
	var resp ec2types.ResponseLaunchTemplateData
	fill(reflect.ValueOf(&resp).Elem(), 0)
	req, err := requestTemplateData(&resp)
	if err != nil {
		t.Fatal(err)
	}
	have, got := jsonLeaves(t, resp), jsonLeaves(t, req)
	var dropped []string
	for path, v := range have {
		g, ok := got[path]
		if !ok {
			dropped = append(dropped, path)
			continue
		}
		if !reflect.DeepEqual(g, v) {
			t.Errorf("%s: %v in the create, %v described", path, g, v)
		}
	}
	sort.Strings(dropped)
	allowed := []string{
		".MetadataOptions.State",                                                // pending/applied: EC2's progress, not a setting
		".NetworkInterfaces[].Ipv6Addresses[].IsPrimaryIpv6",                    // read-only; the create sets PrimaryIpv6 per interface
		".Operator.HiddenByDefault", ".Operator.Managed", ".Operator.Principal", // a service's management, not the copy's
	}
	sort.Strings(allowed)
	if !slices.Equal(dropped, allowed) {
		t.Errorf("dropped from the create: %v", dropped)
	}
	if r, err := requestTemplateData(nil); err != nil || r == nil {
		t.Errorf("no data: %v, %v", r, err)
	}
}
