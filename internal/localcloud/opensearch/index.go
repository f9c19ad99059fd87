package opensearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/document"
	bindex "github.com/blevesearch/bleve_index_api"
)

// Names of the bleve fields this package adds beside a document's own.
const (
	fieldSource  = "_source"
	fieldVersion = "_version"
	fieldSeq     = "_seq"
	fieldSeqNo   = "_seq_no" // numeric, for the highest sequence number at open
	// keywordTwin prefixes the keyword copy of a numeric field that the
	// terms aggregation reads: bleve's term facets see numbers only as
	// their prefix-coded terms.
	keywordTwin = "__kw."
)

// indexMeta is what the service persists of an index beside bleve's files.
type indexMeta struct {
	Name     string         `json:"name"`
	UUID     string         `json:"uuid"`
	Created  int64          `json:"created"` // epoch millis
	Settings map[string]any `json:"settings,omitempty"`
	Mappings *Mapping       `json:"mappings"`
}

// index is one OpenSearch index over one bleve index. mu serialises
// writes, so a create's existence check and its write are one step.
type index struct {
	mu     sync.Mutex
	meta   indexMeta
	bi     bleve.Index
	fields map[string]*field
	subs   map[string][]*field // multi-fields of a field
	seq    int64
	text   analysis.Analyzer
	dir    string
}

func (ix *index) setMapping(m *Mapping) error {
	fields, err := m.fields()
	if err != nil {
		return err
	}
	ix.meta.Mappings, ix.fields = m, fields
	ix.subs = map[string][]*field{}
	for p, f := range fields {
		if i := strings.LastIndexByte(p, '.'); i > 0 {
			if _, ok := fields[p[:i]]; ok {
				ix.subs[p[:i]] = append(ix.subs[p[:i]], f)
			}
		}
	}
	return nil
}

// storedDoc is a document as read back.
type storedDoc struct {
	Source  json.RawMessage
	Version int64
	Seq     int64
}

// get returns the document or nil.
func (ix *index) get(id string) (*storedDoc, error) {
	d, err := ix.bi.Document(id)
	if err != nil {
		return nil, fmt.Errorf("reading document %s of index %s: %w", id, ix.meta.Name, err)
	}
	if d == nil {
		return nil, nil
	}
	out := &storedDoc{}
	d.VisitFields(func(f bindex.Field) {
		switch f.Name() {
		case fieldSource:
			out.Source = append(json.RawMessage(nil), f.Value()...)
		case fieldVersion:
			out.Version, _ = strconv.ParseInt(string(f.Value()), 10, 64)
		case fieldSeq:
			out.Seq, _ = strconv.ParseInt(string(f.Value()), 10, 64)
		}
	})
	if out.Source == nil {
		return nil, nil
	}
	return out, nil
}

// build turns a source document into bleve's fields, adding dynamic
// mappings as it meets new fields. It reports whether the mapping grew.
func (ix *index) build(id string, src []byte, version, seq int64) (*document.Document, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false, &Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception", Reason: "failed to parse: the document is not a JSON object" + errSuffix(err)}
	}
	if dec.Decode(new(any)) != io.EOF {
		return nil, false, &Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception", Reason: "failed to parse: the document has more than one JSON value"}
	}
	doc := document.NewDocument(id)
	grew := false
	var walk func(prefix string, v any, pos []uint64) error
	walk = func(p string, v any, pos []uint64) error {
		switch x := v.(type) {
		case nil:
			return nil
		case map[string]any:
			for k, c := range x {
				if p != "" {
					k = p + "." + k
				}
				if err := walk(k, c, pos); err != nil {
					return err
				}
			}
			return nil
		case []any:
			for i, c := range x {
				if err := walk(p, c, append(pos[:len(pos):len(pos)], uint64(i))); err != nil {
					return err
				}
			}
			return nil
		}
		f := ix.fields[p]
		if f == nil {
			switch ix.meta.Mappings.dynamicMode() {
			case "false":
				return nil
			case "strict":
				return &Error{Status: http.StatusBadRequest, Type: "strict_dynamic_mapping_exception", Reason: fmt.Sprintf("mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed", p)}
			}
			if ix.meta.Mappings.addDynamic(p, v) == nil {
				return nil
			}
			if err := ix.setMapping(ix.meta.Mappings); err != nil {
				return err
			}
			grew = true
			if f = ix.fields[p]; f == nil {
				return nil
			}
		}
		if err := ix.addValue(doc, f, id, v, pos); err != nil {
			return err
		}
		for _, s := range ix.subs[p] {
			if err := ix.addValue(doc, s, id, v, pos); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", obj, nil); err != nil {
		return nil, grew, err
	}
	doc.AddField(document.NewTextFieldWithIndexingOptions(fieldSource, nil, src, bindex.StoreField))
	doc.AddField(document.NewTextFieldWithIndexingOptions(fieldVersion, nil, []byte(strconv.FormatInt(version, 10)), bindex.StoreField))
	doc.AddField(document.NewTextFieldWithIndexingOptions(fieldSeq, nil, []byte(strconv.FormatInt(seq, 10)), bindex.StoreField))
	doc.AddField(document.NewNumericFieldWithIndexingOptions(fieldSeqNo, nil, float64(seq), bindex.IndexField|bindex.DocValues))
	return doc, grew, nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func (ix *index) addValue(doc *document.Document, f *field, id string, v any, pos []uint64) error {
	fail := func(err error) error {
		return &Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception",
			Reason: fmt.Sprintf("failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%v'%s", f.Path, f.Type, id, v, errSuffix(err))}
	}
	switch f.Kind {
	case kindKeyword, kindIP:
		s := scalarString(v)
		if f.Kind == kindIP {
			c, err := canonicalIP(s)
			if err != nil {
				return fail(fmt.Errorf("'%s' is not an IP string literal", s))
			}
			s = c
		}
		if f.IgnoreAbove > 0 && len(s) > f.IgnoreAbove {
			return nil
		}
		doc.AddField(document.NewTextFieldWithIndexingOptions(f.Path, pos, []byte(s), bindex.IndexField|bindex.DocValues))
	case kindText:
		doc.AddField(document.NewTextFieldCustom(f.Path, pos, []byte(scalarString(v)), bindex.IndexField, ix.text))
	case kindNumber:
		n, err := number(v)
		if err != nil {
			return fail(err)
		}
		if f.Integral {
			n = float64(int64(n))
		}
		doc.AddField(document.NewNumericFieldWithIndexingOptions(f.Path, pos, n, bindex.IndexField|bindex.DocValues|bindex.StoreField))
		doc.AddField(document.NewTextFieldWithIndexingOptions(keywordTwin+f.Path, pos, []byte(strconv.FormatFloat(n, 'f', -1, 64)), bindex.IndexField|bindex.DocValues))
	case kindDate:
		t, err := parseDate(v, f.Formats)
		if err != nil {
			return fail(err)
		}
		df, err := document.NewDateTimeFieldWithIndexingOptions(f.Path, pos, t, time.RFC3339Nano, bindex.IndexField|bindex.DocValues|bindex.StoreField)
		if err != nil {
			return fail(err)
		}
		doc.AddField(df)
	case kindBool:
		var b bool
		switch x := v.(type) {
		case bool:
			b = x
		case string:
			if x != "true" && x != "false" {
				return fail(errors.New("only true or false are booleans"))
			}
			b = x == "true"
		default:
			return fail(errors.New("only true or false are booleans"))
		}
		doc.AddField(document.NewBooleanField(f.Path, pos, b))
	}
	return nil
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	case float64:
		return x, nil
	}
	return 0, errors.New("not a number")
}

func standardAnalyzer() (analysis.Analyzer, error) {
	m := bleve.NewIndexMapping()
	a := m.AnalyzerNamed(standard.Name)
	if a == nil {
		return nil, errors.New("bleve has no standard analyzer")
	}
	return a, nil
}

// highestSeq finds the highest sequence number in the index, so numbering
// goes on after a restart.
func highestSeq(bi bleve.Index) (int64, error) {
	req := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), 1, 0, false)
	req.SortBy([]string{"-" + fieldSeqNo})
	req.Fields = []string{fieldSeq}
	res, err := bi.Search(req)
	if err != nil {
		return 0, err
	}
	if len(res.Hits) == 0 {
		return -1, nil
	}
	s, _ := res.Hits[0].Fields[fieldSeq].(string)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading the highest sequence number: %q", s)
	}
	return n, nil
}
