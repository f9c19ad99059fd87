// Package logs is the ELB access-log pipeline (S6): it reads Classic, ALB
// and NLB access-log objects named by S3 ObjectCreated notifications,
// parses every line with a quote-aware tokenizer, and bulk-creates one
// document per line in an OpenSearch-compatible store, with ids derived
// from the object and the line's offset so a redelivery is never indexed
// twice.
//
// It must never drop a line silently: a line is indexed, found already
// indexed (409), or sent to the dead-letter sink with its object, offset
// and reason; anything else fails the object so its message comes back.
package logs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Format is an access-log format.
type Format uint8

// Formats, detected from the object key.
const (
	FormatUnknown Format = iota
	FormatClassic
	FormatALB
	FormatNLB
	// FormatConnection is the ALB connection log (conn_log. objects).
	FormatConnection
)

func (f Format) String() string {
	switch f {
	case FormatClassic:
		return "classic"
	case FormatALB:
		return "alb"
	case FormatNLB:
		return "nlb"
	case FormatConnection:
		return "alb-connection"
	}
	return "unknown"
}

func (f Format) label() string {
	switch f {
	case FormatClassic:
		return "ELB Classic"
	case FormatALB:
		return "ALB"
	case FormatNLB:
		return "NLB"
	case FormatConnection:
		return "ALB connection-log"
	}
	return "unknown-format"
}

// ftype is how a field is checked and encoded.
type ftype uint8

const (
	tKeyword  ftype = iota
	tDate           // ISO 8601, with or without fraction and Z
	tHostPort       // ip:port, split into NAME_ip and NAME_port
	tInt            // integer
	tFloat          // decimal
	tRequest        // "METHOD URL PROTOCOL", also split
	tIP             // an address alone
)

type fieldDef struct {
	name string
	typ  ftype
	// ip and port are the names of a tHostPort field's halves.
	ip, port string
	// key, ipKey and portKey are the names as the encoder writes them,
	// `,"NAME":`, built once rather than per line; keyQuote is key and
	// the quote opening a string value.
	key, keyQuote, ipKey, portKey string
}

func jsonKey(name string) string { return `,"` + name + `":` }

func fd(name string, t ftype) fieldDef {
	return fieldDef{name: name, typ: t, key: jsonKey(name), keyQuote: jsonKey(name) + `"`}
}

func hp(ip, port string) fieldDef {
	name := ip + ":" + port
	return fieldDef{name: name, typ: tHostPort, ip: ip, port: port, key: jsonKey(name), ipKey: jsonKey(ip), portKey: jsonKey(port)}
}

// spec is one format: its fields in order, how many a line must have, and
// where its time is.
type spec struct {
	format   Format
	fields   []fieldDef
	required int
	timeAt   int
	check    func(l *Line) error
}

// albFields are the documented ALB fields, in order; AWS appended them
// over the years (18 at launch in 2016; domain_name and chosen_cert_arn;
// matched_rule_priority through redirect_url in 2018; error_reason in
// 2019; the target lists and classifications in 2020; conn_trace_id in
// May 2024; the transform fields in August 2025). A line may stop after
// any of them and may carry more: the rest are kept as unknown_fields.
var albFields = []fieldDef{
	fd("type", tKeyword), fd("time", tDate), fd("elb", tKeyword), hp("client_ip", "client_port"), hp("target_ip", "target_port"),
	fd("request_processing_time", tFloat), fd("target_processing_time", tFloat), fd("response_processing_time", tFloat),
	fd("elb_status_code", tInt), fd("target_status_code", tInt), fd("received_bytes", tInt), fd("sent_bytes", tInt),
	fd("request", tRequest), fd("user_agent", tKeyword), fd("ssl_cipher", tKeyword), fd("ssl_protocol", tKeyword),
	fd("target_group_arn", tKeyword), fd("trace_id", tKeyword),
	// 18: SNI
	fd("domain_name", tKeyword), fd("chosen_cert_arn", tKeyword),
	// 20: 2018
	fd("matched_rule_priority", tInt), fd("request_creation_time", tDate), fd("actions_executed", tKeyword), fd("redirect_url", tKeyword),
	// 24: 2019
	fd("error_reason", tKeyword),
	// 25: 2020
	fd("target_port_list", tKeyword), fd("target_status_code_list", tKeyword), fd("classification", tKeyword), fd("classification_reason", tKeyword),
	// 29: May 2024
	fd("conn_trace_id", tKeyword),
	// 30: August 2025
	fd("transformed_host", tKeyword), fd("transformed_uri", tKeyword), fd("request_transform_status", tKeyword),
}

var classicFields = []fieldDef{
	fd("time", tDate), fd("elb", tKeyword), hp("client_ip", "client_port"), hp("backend_ip", "backend_port"),
	fd("request_processing_time", tFloat), fd("backend_processing_time", tFloat), fd("response_processing_time", tFloat),
	fd("elb_status_code", tInt), fd("backend_status_code", tInt), fd("received_bytes", tInt), fd("sent_bytes", tInt),
	fd("request", tRequest), fd("user_agent", tKeyword), fd("ssl_cipher", tKeyword), fd("ssl_protocol", tKeyword),
}

var nlbFields = []fieldDef{
	fd("type", tKeyword), fd("version", tKeyword), fd("time", tDate), fd("elb", tKeyword), fd("listener", tKeyword),
	hp("client_ip", "client_port"), hp("destination_ip", "destination_port"), fd("connection_time", tInt), fd("tls_handshake_time", tInt),
	fd("received_bytes", tInt), fd("sent_bytes", tInt), fd("incoming_tls_alert", tKeyword), fd("chosen_cert_arn", tKeyword),
	fd("chosen_cert_serial", tKeyword), fd("tls_cipher", tKeyword), fd("tls_protocol_version", tKeyword), fd("tls_named_group", tKeyword),
	fd("domain_name", tKeyword), fd("alpn_fe_protocol", tKeyword), fd("alpn_be_protocol", tKeyword), fd("alpn_client_preference_list", tKeyword),
	fd("tls_connection_creation_time", tDate),
}

var connFields = []fieldDef{
	fd("time", tDate), fd("client_ip", tIP), fd("client_port", tInt), fd("listener_port", tInt), fd("tls_protocol", tKeyword),
	fd("tls_cipher", tKeyword), fd("tls_handshake_latency", tFloat), fd("leaf_client_cert_subject", tKeyword),
	fd("leaf_client_cert_validity", tKeyword), fd("leaf_client_cert_serial_number", tKeyword), fd("tls_verify_status", tKeyword),
	fd("conn_trace_id", tKeyword),
}

// specs is indexed by Format (an array, not a map: Parse looks its spec up
// once per line).
var specs = [256]*spec{
	FormatALB: {format: FormatALB, fields: albFields, required: 18, timeAt: 1, check: func(l *Line) error {
		switch string(l.f[0]) {
		case "http", "https", "h2", "grpcs", "ws", "wss":
			return nil
		}
		return fmt.Errorf("not an ALB line: its type is %q, not http, https, h2, grpcs, ws or wss", clip(l.f[0]))
	}},
	FormatClassic: {format: FormatClassic, fields: classicFields, required: 12, timeAt: 0},
	FormatNLB: {format: FormatNLB, fields: nlbFields, required: 11, timeAt: 2, check: func(l *Line) error {
		if string(l.f[0]) != "tls" {
			return fmt.Errorf("not an NLB TLS line: its type is %q, not tls", clip(l.f[0]))
		}
		return nil
	}},
	FormatConnection: {format: FormatConnection, fields: connFields, required: 4, timeAt: 0},
}

// MaxFields is the most fields a line may have, trailing unknown ones
// included.
const MaxFields = 64

// Line is one parsed line. Its fields point into the input line: they are
// valid until that buffer is reused. A Line is reused from line to line,
// so parsing allocates nothing.
type Line struct {
	spec   *spec
	f      [MaxFields][]byte
	n      int
	quoted uint64 // bit i: field i was quoted (and may hold escapes)
}

// Fields returns how many fields the line had.
func (l *Line) Fields() int { return l.n }

// Field returns field i, unescaped only if it held no escapes.
func (l *Line) Field(i int) []byte { return l.f[i] }

// Time returns the line's time field.
func (l *Line) Time() []byte { return l.f[l.spec.timeAt] }

// ErrTooManyFields is returned for a line of more than MaxFields fields.
var ErrTooManyFields = fmt.Errorf("the line has more than %d fields", MaxFields)

// Tokenize splits a line into its space-separated fields. A field that
// starts with a double quote runs to the next unescaped double quote
// (ALB escapes a quote inside as \x22 or \"), and its quotes are removed.
// It allocates nothing.
func (l *Line) Tokenize(line []byte) error {
	l.n, l.quoted = 0, 0
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	i := 0
	for i < len(line) {
		if l.n == MaxFields {
			return ErrTooManyFields
		}
		if line[i] == '"' {
			end := closingQuote(line, i+1)
			if end < 0 {
				return fmt.Errorf("field %d: a quote opened at byte %d is never closed", l.n, i)
			}
			l.f[l.n] = line[i+1 : end]
			l.quoted |= 1 << uint(l.n)
			l.n++
			i = end + 1
			if i < len(line) {
				if line[i] != ' ' {
					return fmt.Errorf("field %d: %q follows a closing quote where a space should", l.n-1, line[i])
				}
				i++
				if i == len(line) {
					l.f[l.n], l.n = line[i:], l.n+1 // a trailing space: an empty last field
				}
			}
			continue
		}
		j := spaceAt(line[i:])
		if j < 0 {
			l.f[l.n] = line[i:]
			l.n++
			break
		}
		l.f[l.n] = line[i : i+j]
		l.n++
		i += j + 1
		if i == len(line) {
			if l.n == MaxFields {
				return ErrTooManyFields
			}
			l.f[l.n], l.n = line[i:], l.n+1
		}
	}
	return nil
}

// spaceAt is bytes.IndexByte(b, ' ') for the short unquoted fields of a
// line (a few to a few dozen bytes), where the call's setup costs more
// than the search: it tests eight bytes at once, a byte being a space
// when it XORs with one to zero (the lowest set bit marks the first).
func spaceAt(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		y := binary.LittleEndian.Uint64(b[i:]) ^ ' '*lsb
		if t := (y - lsb) &^ y & msb; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ' ' {
			return i
		}
	}
	return -1
}

// closingQuote finds the quote that ends a quoted field starting at from:
// one not escaped by an odd run of backslashes.
func closingQuote(b []byte, from int) int {
	for {
		j := bytes.IndexByte(b[from:], '"')
		if j < 0 {
			return -1
		}
		k := from + j
		bs := 0
		for p := k - 1; p >= from && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return k
		}
		from = k + 1
	}
}

// Parse tokenizes line as format f and checks its fields: the required
// ones present, times, addresses and numbers well formed. Fields past the
// known ones are kept, never an error.
func (l *Line) Parse(f Format, line []byte) error {
	s := specs[f]
	if s == nil {
		return fmt.Errorf("no parser for format %s", f)
	}
	l.spec = s
	if err := l.Tokenize(line); err != nil {
		return err
	}
	if s.check != nil && l.n > 0 {
		if err := s.check(l); err != nil {
			return err
		}
	}
	if l.n < s.required {
		return fmt.Errorf("an %s line has at least %d fields; this one has %d", f.label(), s.required, l.n)
	}
	known := min(l.n, len(s.fields))
	for i := 0; i < known; i++ {
		v := l.f[i]
		d := &s.fields[i]
		if isDash(v) {
			if i == s.timeAt || d.ip == "client_ip" {
				return fmt.Errorf("field %s is required but absent (-)", d.name)
			}
			continue
		}
		var ok bool
		switch d.typ {
		case tDate:
			ok = isTime(v)
		case tHostPort:
			ok = hostPortAt(v) > 0
		case tInt:
			ok = isInt(v)
		case tFloat:
			ok = isFloat(v)
		case tIP:
			ok = len(v) > 0 && len(v) <= 45
		default:
			continue
		}
		if !ok {
			return fmt.Errorf("field %s: %q is not a valid %s", d.name, clip(v), typeName(d.typ))
		}
	}
	return nil
}

func typeName(t ftype) string {
	switch t {
	case tDate:
		return "time"
	case tHostPort:
		return "ip:port"
	case tInt:
		return "integer"
	case tFloat:
		return "number"
	case tIP:
		return "address"
	}
	return "value"
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func isDash(b []byte) bool { return len(b) == 1 && b[0] == '-' }

func digit(c byte) bool { return c >= '0' && c <= '9' }

// isTime checks the shape 2006-01-02T15:04:05 with an optional fraction
// and Z, as ELB writes times.
func isTime(b []byte) bool {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if !digit(b[i]) {
			return false
		}
	}
	rest := b[19:]
	if len(rest) > 0 && rest[0] == '.' {
		j := 1
		for j < len(rest) && digit(rest[j]) {
			j++
		}
		if j == 1 {
			return false
		}
		rest = rest[j:]
	}
	return len(rest) == 0 || (len(rest) == 1 && rest[0] == 'Z')
}

// hostPortAt returns the index of the colon before the port, or -1.
func hostPortAt(b []byte) int {
	i := bytes.LastIndexByte(b, ':')
	if i <= 0 || i == len(b)-1 || len(b)-i-1 > 5 {
		return -1
	}
	for _, c := range b[i+1:] {
		if !digit(c) {
			return -1
		}
	}
	return i
}

func isInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if !digit(c) {
			return false
		}
	}
	return true
}

func isFloat(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	dot := false
	n := 0
	for _, c := range b {
		switch {
		case digit(c):
			n++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return n > 0 && len(b) <= 32
}
