package s3

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/johannesboyne/gofakes3"
)

// ListObjectVersions for a backend that keeps no versions (the bolt store
// the local cloud runs on): gofakes3 answers NotImplemented there. A
// bucket that never had versioning enabled holds one version of each
// object, whose id S3 reports as "null", so the listing is the object
// listing with every object its own latest, "null" version. Deleting
// version "null" deletes the object (gofakes3 routes versionId=null to the
// plain delete), so emptying a bucket by version works as on S3.

// listVersionsResult is S3's ListObjectVersions answer.
type listVersionsResult struct {
	XMLName             xml.Name        `xml:"ListVersionsResult"`
	Xmlns               string          `xml:"xmlns,attr"`
	Name                string          `xml:"Name"`
	Prefix              string          `xml:"Prefix"`
	Delimiter           string          `xml:"Delimiter,omitempty"`
	KeyMarker           string          `xml:"KeyMarker"`
	VersionIDMarker     string          `xml:"VersionIdMarker"`
	NextKeyMarker       string          `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string          `xml:"NextVersionIdMarker,omitempty"`
	MaxKeys             int64           `xml:"MaxKeys"`
	IsTruncated         bool            `xml:"IsTruncated"`
	Versions            []objectVersion `xml:"Version"`
	CommonPrefixes      []commonPrefix  `xml:"CommonPrefixes,omitempty"`
}

type objectVersion struct {
	Key          string                `xml:"Key"`
	VersionID    string                `xml:"VersionId"`
	IsLatest     bool                  `xml:"IsLatest"`
	LastModified gofakes3.ContentTime  `xml:"LastModified"`
	ETag         string                `xml:"ETag"`
	Size         int64                 `xml:"Size"`
	StorageClass gofakes3.StorageClass `xml:"StorageClass"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// errBadVersionQuery is a ListObjectVersions query S3 refuses.
var errBadVersionQuery = errors.New("bad ListObjectVersions query")

// versionsPage reads a ListObjectVersions query: the prefix and
// delimiter, the key to list after (key-marker; with version-id-marker
// "null" too, as each key has that one version) and max-keys (1 to 1,000,
// default 1,000, as S3).
func versionsPage(q url.Values) (gofakes3.Prefix, gofakes3.ListBucketPage, string, error) {
	var prefix, delim *string
	if q.Has("prefix") {
		p := q.Get("prefix")
		prefix = &p
	}
	if q.Has("delimiter") {
		d := q.Get("delimiter")
		delim = &d
	}
	page := gofakes3.ListBucketPage{MaxKeys: 1000}
	if s := q.Get("max-keys"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return gofakes3.Prefix{}, page, "max-keys must be a non-negative integer", errBadVersionQuery
		}
		if n > 0 && n < 1000 {
			page.MaxKeys = n
		}
	}
	if q.Has("version-id-marker") {
		if !q.Has("key-marker") {
			return gofakes3.Prefix{}, page, "A version-id marker cannot be specified without a key marker.", errBadVersionQuery
		}
		if v := q.Get("version-id-marker"); v != "null" {
			return gofakes3.Prefix{}, page, "Invalid version id specified", errBadVersionQuery
		}
	}
	if m := q.Get("key-marker"); m != "" {
		page.Marker, page.HasMarker = m, true
	}
	return gofakes3.NewPrefix(prefix, delim), page, "", nil
}

// serveVersions answers GET /bucket?versions.
func (s *Service) serveVersions(w http.ResponseWriter, r *http.Request, bucket string) {
	q := r.URL.Query()
	prefix, page, msg, err := versionsPage(q)
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "InvalidArgument", msg, r.URL.Path)
		return
	}
	s.objMu.RLock()
	defer s.objMu.RUnlock()
	if ok, err := s.backend.BucketExists(bucket); err != nil || !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", bucket)
		return
	}
	list, err := s.backend.ListBucket(bucket, &prefix, page)
	if err != nil {
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error(), bucket)
		return
	}
	out := listVersionsResult{Xmlns: "http://s3.amazonaws.com/doc/2006-03-01/", Name: bucket, Prefix: prefix.Prefix, Delimiter: prefix.Delimiter,
		KeyMarker: q.Get("key-marker"), VersionIDMarker: q.Get("version-id-marker"), MaxKeys: page.MaxKeys, IsTruncated: list.IsTruncated,
		Versions: []objectVersion{}}
	last := ""
	for _, c := range list.Contents {
		sc := c.StorageClass
		if sc == "" {
			sc = gofakes3.StorageStandard
		}
		out.Versions = append(out.Versions, objectVersion{Key: c.Key, VersionID: "null", IsLatest: true, LastModified: c.LastModified, ETag: c.ETag, Size: c.Size, StorageClass: sc})
		last = c.Key
	}
	for _, p := range list.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{Prefix: p.Prefix})
		if p.Prefix > last {
			last = p.Prefix
		}
	}
	if out.IsTruncated {
		out.NextKeyMarker = list.NextMarker
		if out.NextKeyMarker == "" {
			out.NextKeyMarker = last
		}
		out.NextVersionIDMarker = "null"
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}
