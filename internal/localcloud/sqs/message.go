package sqs

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"
)

// maxMessageAttributes is AWS's limit of message attributes per message.
const maxMessageAttributes = 10

// attrValue is one message attribute (or message system attribute).
type attrValue struct {
	DataType    string  `json:"data_type"`
	StringValue *string `json:"string_value,omitempty"`
	BinaryValue []byte  `json:"binary_value,omitempty"`
}

// message is one message in a queue. Guarded by Service.mu.
type message struct {
	ID         string               `json:"id"`
	Body       string               `json:"body"`
	Attributes map[string]attrValue `json:"attributes,omitempty"`
	// TraceHeader is the AWSTraceHeader system attribute, if sent.
	TraceHeader string    `json:"trace_header,omitempty"`
	Sent        time.Time `json:"sent"`
	// VisibleAt is when the message may next be received: after its delay,
	// or after the visibility timeout of its last receive.
	VisibleAt    time.Time `json:"visible_at"`
	ReceiveCount int       `json:"receive_count"`
	FirstReceive time.Time `json:"first_receive,omitzero"`
	// Receipt is the handle of the latest receive ("" before the first);
	// only it can delete the message or change its visibility.
	Receipt    string    `json:"receipt,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// DLQSource is the ARN of the queue the message was moved from.
	DLQSource string `json:"dlq_source,omitempty"`
}

// inFlight reports whether m has been received and its visibility timeout
// has not yet ended.
func (m *message) inFlight(now time.Time) bool {
	return m.Receipt != "" && m.VisibleAt.After(now)
}

// delayed reports whether m has never been received and is still within
// its delay.
func (m *message) delayed(now time.Time) bool {
	return m.Receipt == "" && m.VisibleAt.After(now)
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// md5OfAttributes is SQS's checksum of message attributes: for each
// attribute in name order, the name, the data type, a transport byte
// (1 string, 2 binary) and the value, each string or byte value preceded by
// its length as a 4-byte big-endian integer. It returns "" when there are
// none, as SQS omits the field then.
func md5OfAttributes(attrs map[string]attrValue) string {
	if len(attrs) == 0 {
		return ""
	}
	var b []byte
	put := func(p []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	for _, name := range sortedKeys(attrs) {
		v := attrs[name]
		put([]byte(name))
		put([]byte(v.DataType))
		if v.StringValue != nil {
			b = append(b, 1)
			put([]byte(*v.StringValue))
		} else {
			b = append(b, 2)
			put(v.BinaryValue)
		}
	}
	return md5Hex(b)
}

// validBody reports whether s holds only the characters SQS accepts.
func validBody(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// validateAttributes checks message attributes as SQS does and returns
// their size in bytes (names, types and values count towards the message
// size limit).
func validateAttributes(attrs map[string]attrValue) (int, error) {
	if len(attrs) > maxMessageAttributes {
		return 0, errInvalidParameterValue("Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), maxMessageAttributes)
	}
	size := 0
	for _, name := range sortedKeys(attrs) {
		v := attrs[name]
		if err := validateAttributeName(name); err != nil {
			return 0, err
		}
		base, _, _ := strings.Cut(v.DataType, ".")
		switch base {
		case "String", "Number":
			if v.StringValue == nil || *v.StringValue == "" {
				return 0, errInvalidParameterValue("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, base)
			}
			if base == "Number" {
				if _, ok := new(big.Float).SetString(*v.StringValue); !ok {
					return 0, errInvalidParameterValue("Could not cast message attribute '%s' value to number.", name)
				}
			}
			size += len(*v.StringValue)
		case "Binary":
			if len(v.BinaryValue) == 0 {
				return 0, errInvalidParameterValue("The message attribute '%s' must contain non-empty message attribute value for message attribute type 'Binary'.", name)
			}
			size += len(v.BinaryValue)
		case "":
			return 0, errInvalidParameterValue("The message attribute '%s' must contain non-empty message attribute type.", name)
		default:
			return 0, errInvalidParameterValue("The type of message attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		if len(v.DataType) > 256 {
			return 0, errInvalidParameterValue("Message attribute type can be at most 256 characters: '%s'.", name)
		}
		size += len(name) + len(v.DataType)
	}
	return size, nil
}

func validateAttributeName(name string) error {
	bad := func(reason string) error {
		return errInvalidParameterValue("Message attribute name '%s' is invalid. %s", name, reason)
	}
	switch {
	case name == "":
		return errInvalidParameterValue("The request must contain non-empty message attribute name.")
	case len(name) > 256:
		return bad("It can be at most 256 characters long.")
	case strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, ".."):
		return bad("Attribute name cannot start or end with a period (.), or have multiple periods in succession.")
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return bad("Attribute names starting with 'AWS.' or 'Amazon.' are reserved for use by Amazon Web Services.")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return bad("It may only contain alphanumeric characters, hyphens (-), underscores (_), and periods (.).")
		}
	}
	return nil
}

// selectAttributes returns the attributes of m that names asks for: "All",
// ".*", exact names, or "prefix.*".
func selectAttributes(attrs map[string]attrValue, names []string) map[string]attrValue {
	if len(attrs) == 0 || len(names) == 0 {
		return nil
	}
	out := map[string]attrValue{}
	for name, v := range attrs {
		for _, want := range names {
			if want == "All" || want == ".*" || want == name ||
				strings.HasSuffix(want, ".*") && strings.HasPrefix(name, strings.TrimSuffix(want, "*")) {
				out[name] = v
				break
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
