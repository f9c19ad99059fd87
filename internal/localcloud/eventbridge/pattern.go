package eventbridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// This file is EventBridge's event pattern language, as AWS documents it
// (user guide: "event patterns", "content filtering", "arrays", "null
// values") and as its open-source matcher, Event Ruler, behaves:
//
//   - a pattern is a JSON object with the event's nesting; every field it
//     names must match (AND), fields it does not name are ignored;
//   - a leaf is a non-empty array of alternatives (OR): literal strings,
//     numbers, true/false/null, or one-key operator objects: prefix,
//     suffix, equals-ignore-case, wildcard, anything-but, numeric, exists,
//     cidr;
//   - "$or": [ {…}, {…}, … ] (two or more sub-patterns) matches when any
//     of them does;
//   - an event array matches when any element does; objects inside arrays
//     are matched element by element, so fields from different elements
//     never combine (Ruler's array consistency);
//   - exists matches leaves only: a field holding an object does not
//     "exist" as far as exists is concerned;
//   - literal numbers match by their JSON text ("for numbers, EventBridge
//     uses string representation": 300 and 300.0 differ); numeric
//     comparisons compare values.

// Pattern is a compiled event pattern. It is safe for concurrent use.
type Pattern struct {
	root *objectPattern
}

// PatternError says why a pattern is invalid; the API reports it as
// InvalidEventPatternException.
type PatternError struct{ Reason string }

func (e *PatternError) Error() string { return "Event pattern is not valid. Reason: " + e.Reason }

func patternErr(format string, args ...any) error {
	return &PatternError{Reason: fmt.Sprintf(format, args...)}
}

// objectPattern matches a JSON object: every field, and every $or group.
type objectPattern struct {
	fields []fieldPattern
	ors    [][]*objectPattern
}

// fieldPattern matches one field: by a nested object pattern, or by leaf
// conditions of which one must hold.
type fieldPattern struct {
	key   string
	obj   *objectPattern
	conds []condition
}

// condition is one alternative of a leaf. values are the field's leaf
// values (arrays flattened, objects left out), none when it is missing.
type condition interface {
	match(values []any) bool
}

// ParsePattern compiles an event pattern, returning a *PatternError for an
// invalid one.
func ParsePattern(src string) (*Pattern, error) {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, patternErr("Filter is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, patternErr("Filter is not valid JSON: unexpected data after the pattern")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, patternErr("Filter is not an object")
	}
	root, err := compileObject(obj, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

func compileObject(obj map[string]any, path string) (*objectPattern, error) {
	if len(obj) == 0 {
		return nil, patternErr("Empty objects are not allowed at %s", where(path))
	}
	p := &objectPattern{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := join(path, k)
		switch v := obj[k].(type) {
		case map[string]any:
			sub, err := compileObject(v, field)
			if err != nil {
				return nil, err
			}
			p.fields = append(p.fields, fieldPattern{key: k, obj: sub})
		case []any:
			if k == "$or" && allObjects(v) {
				group, err := compileOr(v, path)
				if err != nil {
					return nil, err
				}
				p.ors = append(p.ors, group)
				continue
			}
			conds, err := compileLeaf(v, field)
			if err != nil {
				return nil, err
			}
			p.fields = append(p.fields, fieldPattern{key: k, conds: conds})
		default:
			return nil, patternErr("Match value must be String, number, true, false, or null at %s; a leaf must be an array of them", where(field))
		}
	}
	return p, nil
}

func allObjects(vs []any) bool {
	for _, v := range vs {
		if _, ok := v.(map[string]any); !ok {
			return false
		}
	}
	return len(vs) > 0
}

func compileOr(vs []any, path string) ([]*objectPattern, error) {
	if len(vs) < 2 {
		return nil, patternErr("$or must hold at least two patterns at %s", where(path))
	}
	var group []*objectPattern
	for _, v := range vs {
		sub, err := compileObject(v.(map[string]any), path)
		if err != nil {
			return nil, err
		}
		group = append(group, sub)
	}
	return group, nil
}

func compileLeaf(vs []any, field string) ([]condition, error) {
	if len(vs) == 0 {
		return nil, patternErr("Empty arrays are not allowed at %s", where(field))
	}
	var conds []condition
	for _, v := range vs {
		switch x := v.(type) {
		case string, json.Number, bool, nil:
			conds = append(conds, literal{x})
		case map[string]any:
			c, err := compileOperator(x, field)
			if err != nil {
				return nil, err
			}
			conds = append(conds, c)
		default:
			return nil, patternErr("Match value must be String, number, true, false, or null at %s", where(field))
		}
	}
	return conds, nil
}

func compileOperator(op map[string]any, field string) (condition, error) {
	if len(op) != 1 {
		return nil, patternErr("Only one key allowed in match expression at %s", where(field))
	}
	for name, arg := range op {
		switch name {
		case "prefix", "suffix":
			s, fold, err := stringOrFolded(name, arg, field)
			if err != nil {
				return nil, err
			}
			return affix{suffix: name == "suffix", s: s, fold: fold}, nil
		case "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return nil, patternErr("equals-ignore-case match pattern must be a string at %s", where(field))
			}
			return foldEqual{s}, nil
		case "wildcard":
			w, err := compileWildcard(arg, field)
			if err != nil {
				return nil, err
			}
			return w, nil
		case "anything-but":
			return compileAnythingBut(arg, field)
		case "numeric":
			return compileNumeric(arg, field)
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return nil, patternErr("exists match pattern must be either true or false at %s", where(field))
			}
			return exists{b}, nil
		case "cidr":
			s, ok := arg.(string)
			if !ok {
				return nil, patternErr("cidr match pattern must be a string at %s", where(field))
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, patternErr("Nonstandard IP address: %s at %s", s, where(field))
			}
			return cidr{p.Masked()}, nil
		default:
			return nil, patternErr("Unrecognized match type %s at %s", name, where(field))
		}
	}
	panic("unreachable")
}

// stringOrFolded reads "x" or {"equals-ignore-case": "x"}.
func stringOrFolded(op string, arg any, field string) (string, bool, error) {
	switch a := arg.(type) {
	case string:
		return a, false, nil
	case map[string]any:
		if s, ok := a["equals-ignore-case"].(string); ok && len(a) == 1 {
			return s, true, nil
		}
	}
	return "", false, patternErr("%s match pattern must be a string at %s", op, where(field))
}

func compileAnythingBut(arg any, field string) (condition, error) {
	bad := func() (condition, error) {
		return nil, patternErr("Value of anything-but must be an array or single string/number value at %s", where(field))
	}
	switch a := arg.(type) {
	case string, json.Number:
		return anythingBut{values: []any{a}}, nil
	case []any:
		if len(a) == 0 {
			return bad()
		}
		_, firstIsString := a[0].(string)
		for _, v := range a {
			switch v.(type) {
			case string:
				if !firstIsString {
					return nil, patternErr("Inside anything but list, mixed strings and numbers are not supported at %s", where(field))
				}
			case json.Number:
				if firstIsString {
					return nil, patternErr("Inside anything but list, mixed strings and numbers are not supported at %s", where(field))
				}
			default:
				return bad()
			}
		}
		return anythingBut{values: a}, nil
	case map[string]any:
		if len(a) != 1 {
			return bad()
		}
		for name, v := range a {
			switch name {
			case "prefix", "suffix":
				s, fold, err := stringOrFolded(name, v, field)
				if err != nil {
					return nil, err
				}
				return anythingBut{not: affix{suffix: name == "suffix", s: s, fold: fold}}, nil
			case "equals-ignore-case":
				strs, ok := stringList(v)
				if !ok {
					return nil, patternErr("Inside anything-but/equals-ignore-case, only strings are allowed at %s", where(field))
				}
				var alts anyOf
				for _, s := range strs {
					alts = append(alts, foldEqual{s})
				}
				return anythingBut{not: alts}, nil
			case "wildcard":
				strs, ok := stringList(v)
				if !ok {
					return nil, patternErr("Inside anything-but/wildcard, only strings are allowed at %s", where(field))
				}
				var alts anyOf
				for _, s := range strs {
					w, err := compileWildcard(s, field)
					if err != nil {
						return nil, err
					}
					alts = append(alts, w)
				}
				return anythingBut{not: alts}, nil
			}
		}
	}
	return bad()
}

// stringList reads "x" or ["x", "y", …] (non-empty).
func stringList(v any) ([]string, bool) {
	switch a := v.(type) {
	case string:
		return []string{a}, true
	case []any:
		var out []string
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func compileNumeric(arg any, field string) (condition, error) {
	a, ok := arg.([]any)
	if !ok || (len(a) != 2 && len(a) != 4) {
		return nil, patternErr("Value of numeric must be an array of one or two comparisons at %s", where(field))
	}
	var n numeric
	for i := 0; i < len(a); i += 2 {
		op, ok := a[i].(string)
		num, isNum := a[i+1].(json.Number)
		if !ok || !isNum {
			return nil, patternErr("Value of numeric must be an array of operator, number pairs at %s", where(field))
		}
		f, err := num.Float64()
		if err != nil {
			return nil, patternErr("Value of numeric is not a number: %s at %s", num, where(field))
		}
		switch {
		case op == "=" && len(a) == 2:
			n.lo, n.hi, n.hasLo, n.hasHi = f, f, true, true
		case (op == ">" || op == ">=") && i == 0:
			n.lo, n.hasLo, n.openLo = f, true, op == ">"
		case (op == "<" || op == "<=") && (i == 2 || len(a) == 2):
			n.hi, n.hasHi, n.openHi = f, true, op == "<"
		default:
			return nil, patternErr("Bad numeric range operator %q at %s: use =, or a lower bound (>, >=) before an upper bound (<, <=)", op, where(field))
		}
	}
	if n.hasLo && n.hasHi && (n.lo > n.hi || n.lo == n.hi && (n.openLo || n.openHi)) {
		return nil, patternErr("Bottom must be less than top at %s", where(field))
	}
	return n, nil
}

func compileWildcard(arg any, field string) (wildcard, error) {
	s, ok := arg.(string)
	if !ok {
		return wildcard{}, patternErr("wildcard match pattern must be a string at %s", where(field))
	}
	// Split into literal pieces around unescaped '*'.
	var pieces []string
	var cur strings.Builder
	prevStar := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return wildcard{}, patternErr("Invalid escape character at %s: only \\* and \\\\ may be escaped", where(field))
			}
			i++
			cur.WriteByte(s[i])
			prevStar = false
		case '*':
			if prevStar {
				return wildcard{}, patternErr("Consecutive wildcard characters at pos %d at %s", i, where(field))
			}
			pieces = append(pieces, cur.String())
			cur.Reset()
			prevStar = true
		default:
			cur.WriteByte(c)
			prevStar = false
		}
	}
	pieces = append(pieces, cur.String())
	return wildcard{pieces: pieces}, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return strconv.Quote(path)
}

// Match reports whether event (decoded with DecodeEvent, or by
// encoding/json with UseNumber) matches the pattern.
func (p *Pattern) Match(event map[string]any) bool {
	return p.root.match(event)
}

// MatchJSON decodes event and matches it.
func (p *Pattern) MatchJSON(event []byte) (bool, error) {
	ev, err := DecodeEvent(event)
	if err != nil {
		return false, err
	}
	return p.Match(ev), nil
}

// DecodeEvent decodes an event as matching needs it: a JSON object, with
// numbers kept as json.Number.
func DecodeEvent(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	if ev == nil {
		return nil, fmt.Errorf("decoding event: not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decoding event: unexpected data after the event")
	}
	return ev, nil
}

func (p *objectPattern) match(obj map[string]any) bool {
	for _, f := range p.fields {
		v, ok := obj[f.key]
		if f.obj != nil {
			if !matchNested(f.obj, v, ok) {
				return false
			}
			continue
		}
		values := leaves(v, ok, nil)
		matched := false
		for _, c := range f.conds {
			if c.match(values) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	for _, group := range p.ors {
		matched := false
		for _, alt := range group {
			if alt.match(obj) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// matchNested matches a nested pattern against a field's value: an object,
// any object element of an array, or — for a missing or scalar value —
// nothing, so that only exists:false can match.
func matchNested(p *objectPattern, v any, present bool) bool {
	if present {
		switch x := v.(type) {
		case map[string]any:
			return p.match(x)
		case []any:
			hasObjects := false
			for _, e := range x {
				switch e.(type) {
				case map[string]any, []any:
					hasObjects = true
					if matchNested(p, e, true) {
						return true
					}
				}
			}
			if hasObjects {
				return false
			}
		}
	}
	return p.match(map[string]any{})
}

// leaves appends the leaf values of v: v itself, or the elements of an
// array (recursively); objects are not leaves.
func leaves(v any, present bool, out []any) []any {
	if !present {
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		return out
	case []any:
		for _, e := range x {
			out = leaves(e, true, out)
		}
		return out
	default:
		return append(out, v)
	}
}

// anyValue reports whether f holds for some value.
func anyValue(values []any, f func(any) bool) bool {
	for _, v := range values {
		if f(v) {
			return true
		}
	}
	return false
}

// literal matches a value equal to it: same JSON type, same string, same
// number text, same boolean, or null.
type literal struct{ v any }

func (l literal) match(values []any) bool {
	return anyValue(values, l.equal)
}

func (l literal) equal(v any) bool {
	switch want := l.v.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == want
	case json.Number:
		n, ok := v.(json.Number)
		return ok && n == want
	case bool:
		b, ok := v.(bool)
		return ok && b == want
	case nil:
		return v == nil
	}
	return false
}

type affix struct {
	suffix bool
	s      string
	fold   bool
}

func (a affix) match(values []any) bool { return anyValue(values, a.holds) }

func (a affix) holds(v any) bool {
	s, ok := v.(string)
	if !ok || len(s) < len(a.s) {
		return false
	}
	part := s[:len(a.s)]
	if a.suffix {
		part = s[len(s)-len(a.s):]
	}
	if a.fold {
		return strings.EqualFold(part, a.s)
	}
	return part == a.s
}

type foldEqual struct{ s string }

func (f foldEqual) match(values []any) bool { return anyValue(values, f.holds) }

func (f foldEqual) holds(v any) bool {
	s, ok := v.(string)
	return ok && strings.EqualFold(s, f.s)
}

// wildcard matches strings against pieces separated by '*'.
type wildcard struct{ pieces []string }

func (w wildcard) match(values []any) bool { return anyValue(values, w.holds) }

func (w wildcard) holds(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	if len(w.pieces) == 1 {
		return s == w.pieces[0]
	}
	first, last := w.pieces[0], w.pieces[len(w.pieces)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, mid := range w.pieces[1 : len(w.pieces)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// holder is a condition on one value.
type holder interface{ holds(any) bool }

// anyOf holds when one of its members does.
type anyOf []holder

func (a anyOf) holds(v any) bool {
	for _, h := range a {
		if h.holds(v) {
			return true
		}
	}
	return false
}

// anythingBut matches a present value that equals none of values (or,
// with not set, for which not does not hold).
type anythingBut struct {
	values []any
	not    holder
}

func (a anythingBut) match(values []any) bool {
	return anyValue(values, func(v any) bool {
		if a.not != nil {
			return !a.not.holds(v)
		}
		for _, x := range a.values {
			if (literal{x}).equal(v) {
				return false
			}
		}
		return true
	})
}

type numeric struct {
	lo, hi                       float64
	hasLo, hasHi, openLo, openHi bool
}

func (n numeric) match(values []any) bool {
	return anyValue(values, func(v any) bool {
		num, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := num.Float64()
		if err != nil {
			return false
		}
		if n.hasLo && (f < n.lo || n.openLo && f == n.lo) {
			return false
		}
		if n.hasHi && (f > n.hi || n.openHi && f == n.hi) {
			return false
		}
		return true
	})
}

type exists struct{ want bool }

func (e exists) match(values []any) bool { return (len(values) > 0) == e.want }

type cidr struct{ prefix netip.Prefix }

func (c cidr) match(values []any) bool {
	return anyValue(values, func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		ip, err := netip.ParseAddr(s)
		return err == nil && c.prefix.Contains(ip.Unmap())
	})
}
