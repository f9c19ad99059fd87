package opensearch

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Property is one field of a mapping, in OpenSearch's JSON shape.
type Property struct {
	Type        string               `json:"type,omitempty"`
	Format      string               `json:"format,omitempty"`
	IgnoreAbove int                  `json:"ignore_above,omitempty"`
	Fields      map[string]*Property `json:"fields,omitempty"`
	Properties  map[string]*Property `json:"properties,omitempty"`
}

// Mapping is an index's mappings.
type Mapping struct {
	// Dynamic is "true" (default), "false" or "strict".
	Dynamic    any                  `json:"dynamic,omitempty"`
	Properties map[string]*Property `json:"properties,omitempty"`
}

// kind is how a leaf field is indexed underneath.
type kind int

const (
	kindKeyword kind = iota
	kindText
	kindNumber
	kindDate
	kindBool
	kindIP
)

var typeKinds = map[string]kind{
	"keyword": kindKeyword, "text": kindText, "date": kindDate, "boolean": kindBool, "ip": kindIP,
	"long": kindNumber, "integer": kindNumber, "short": kindNumber, "byte": kindNumber,
	"double": kindNumber, "float": kindNumber, "half_float": kindNumber, "scaled_float": kindNumber, "unsigned_long": kindNumber,
}

func supportedTypes() string {
	return strings.Join(slices.Sorted(maps.Keys(typeKinds)), ", ") + ", object"
}

// field is a leaf of the flattened mapping.
type field struct {
	Path        string
	Type        string
	Kind        kind
	Formats     []string // dates
	IgnoreAbove int
	Integral    bool
}

func (m *Mapping) dynamicMode() string {
	switch v := m.Dynamic.(type) {
	case nil:
		return "true"
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	}
	return "true"
}

// validate checks every property and returns the flattened leaves.
func (m *Mapping) fields() (map[string]*field, error) {
	switch m.dynamicMode() {
	case "true", "false", "strict":
	default:
		return nil, &Error{Status: 400, Type: "mapper_parsing_exception", Reason: fmt.Sprintf("dynamic must be true, false or strict, not %v", m.Dynamic)}
	}
	out := map[string]*field{}
	var walk func(prefix string, props map[string]*Property) error
	walk = func(prefix string, props map[string]*Property) error {
		for name, p := range props {
			if p == nil {
				return &Error{Status: 400, Type: "mapper_parsing_exception", Reason: "property [" + prefix + name + "] is empty"}
			}
			full := prefix + name
			if p.Type == "" || p.Type == "object" {
				if err := walk(full+".", p.Properties); err != nil {
					return err
				}
				continue
			}
			f, err := newField(full, p)
			if err != nil {
				return err
			}
			out[full] = f
			for sub, sp := range p.Fields {
				sf, err := newField(full+"."+sub, sp)
				if err != nil {
					return err
				}
				out[sf.Path] = sf
			}
		}
		return nil
	}
	if err := walk("", m.Properties); err != nil {
		return nil, err
	}
	return out, nil
}

func newField(full string, p *Property) (*field, error) {
	k, ok := typeKinds[p.Type]
	if !ok {
		return nil, &Error{Status: 400, Type: "mapper_parsing_exception", Reason: fmt.Sprintf("no handler for type [%s] declared on field [%s]; this endpoint supports %s", p.Type, full, supportedTypes())}
	}
	f := &field{Path: full, Type: p.Type, Kind: k, IgnoreAbove: p.IgnoreAbove}
	switch p.Type {
	case "long", "integer", "short", "byte", "unsigned_long":
		f.Integral = true
	}
	if k == kindDate {
		format := p.Format
		if format == "" {
			format = "strict_date_optional_time||epoch_millis"
		}
		for _, fm := range strings.Split(format, "||") {
			switch fm {
			case "strict_date_optional_time", "date_optional_time", "strict_date_time", "date_time", "epoch_millis", "epoch_second",
				"strict_date_optional_time_nanos", "basic_date_time":
				f.Formats = append(f.Formats, fm)
			default:
				return nil, &Error{Status: 400, Type: "mapper_parsing_exception", Reason: fmt.Sprintf("date format [%s] of field [%s] is not supported by this endpoint: use strict_date_optional_time, epoch_millis or epoch_second", fm, full)}
			}
		}
	}
	return f, nil
}

// merge adds other's properties to m (a template's, or dynamic ones);
// m's own win.
func (m *Mapping) merge(other *Mapping) {
	if other == nil {
		return
	}
	if m.Dynamic == nil {
		m.Dynamic = other.Dynamic
	}
	m.Properties = mergeProps(m.Properties, other.Properties)
}

func mergeProps(dst, src map[string]*Property) map[string]*Property {
	if dst == nil && len(src) > 0 {
		dst = map[string]*Property{}
	}
	for k, v := range src {
		cur, ok := dst[k]
		switch {
		case !ok:
			dst[k] = v
		case (cur.Type == "" || cur.Type == "object") && (v.Type == "" || v.Type == "object"):
			cur.Properties = mergeProps(cur.Properties, v.Properties)
		}
	}
	return dst
}

// addDynamic records a field found in a document, as OpenSearch's default
// dynamic mapping would: strings that look like dates are dates, other
// strings text with a keyword sub-field, numbers long or float, booleans
// boolean.
func (m *Mapping) addDynamic(fullPath string, v any) *Property {
	var p *Property
	switch x := v.(type) {
	case string:
		if _, err := parseDate(x, []string{"strict_date_optional_time"}); err == nil && strings.Contains(x, "-") {
			p = &Property{Type: "date"}
		} else {
			p = &Property{Type: "text", Fields: map[string]*Property{"keyword": {Type: "keyword", IgnoreAbove: 256}}}
		}
	case json.Number:
		if _, err := x.Int64(); err == nil {
			p = &Property{Type: "long"}
		} else {
			p = &Property{Type: "float"}
		}
	case bool:
		p = &Property{Type: "boolean"}
	default:
		return nil
	}
	parts := strings.Split(fullPath, ".")
	props := &m.Properties
	for _, part := range parts[:len(parts)-1] {
		if *props == nil {
			*props = map[string]*Property{}
		}
		obj := (*props)[part]
		if obj == nil {
			obj = &Property{Type: "object"}
			(*props)[part] = obj
		}
		props = &obj.Properties
	}
	if *props == nil {
		*props = map[string]*Property{}
	}
	(*props)[parts[len(parts)-1]] = p
	return p
}

// IndexTemplate is a composable index template (PUT _index_template/NAME).
type IndexTemplate struct {
	IndexPatterns []string `json:"index_patterns"`
	Priority      int      `json:"priority,omitempty"`
	Template      struct {
		Settings map[string]any `json:"settings,omitempty"`
		Mappings *Mapping       `json:"mappings,omitempty"`
	} `json:"template"`
}

func (t *IndexTemplate) matches(index string) bool {
	for _, p := range t.IndexPatterns {
		if ok, _ := path.Match(p, index); ok {
			return true
		}
	}
	return false
}

// parseDate reads a date value in one of formats.
func parseDate(v any, formats []string) (time.Time, error) {
	for _, fm := range formats {
		switch fm {
		case "epoch_millis", "epoch_second":
			var f float64
			switch x := v.(type) {
			case json.Number:
				var err error
				if f, err = x.Float64(); err != nil {
					continue
				}
			case string:
				var err error
				if f, err = strconv.ParseFloat(x, 64); err != nil {
					continue
				}
			case float64:
				f = x
			default:
				continue
			}
			if fm == "epoch_second" {
				f *= 1000
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			return time.UnixMilli(int64(f)).UTC().Add(time.Duration(math.Mod(f, 1) * float64(time.Millisecond))), nil
		default:
			s, ok := v.(string)
			if !ok {
				continue
			}
			if t, err := parseISO(s); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("failed to parse date field [%v] with format [%s]", v, strings.Join(formats, "||"))
}

// isoLayouts are the shapes strict_date_optional_time accepts (a date,
// optionally a time, optionally fractions and a zone).
var isoLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15",
	"2006-01-02", "2006-01", "2006", "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05.999999999Z0700",
}

func parseISO(s string) (time.Time, error) {
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}

// canonicalIP returns the address's canonical text, or an error.
func canonicalIP(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", err
	}
	return a.Unmap().String(), nil
}
