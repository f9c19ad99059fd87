package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// S3's additional checksums, SHA-256 only, which gofakes3 does not
// verify or compute:
//   - a PUT with x-amz-checksum-sha256 is verified against its body before
//     it is stored (BadDigest otherwise, the old object kept);
//   - a CopyObject with x-amz-checksum-algorithm SHA256 gives the copy a
//     SHA-256 checksum, the source's stored one or one computed from its
//     bytes, and returns it in CopyObjectResult;
//   - GET and HEAD return the stored x-amz-checksum-* headers only when
//     asked with x-amz-checksum-mode: ENABLED, as S3 does;
//   - If-Match on GET and HEAD and x-amz-copy-source-if-match on a copy
//     are honoured (412 PreconditionFailed), so a reader can tie the bytes
//     it reads or copies to the checksum it compared.
//
// The checksum is kept where gofakes3 keeps an object's x-amz-* request
// headers, with the object (its metadata), so it is persisted, replaced
// by a PUT and carried by a copy with the object.
//
// Not done: multipart uploads' checksums (a multipart object has none of
// its own here), and checksums of other algorithms (stored as sent,
// unverified, as before).

const (
	hdrChecksumSHA256 = "X-Amz-Checksum-Sha256"
	hdrChecksumAlgo   = "X-Amz-Checksum-Algorithm"
	hdrSDKChecksum    = "X-Amz-Sdk-Checksum-Algorithm"
	hdrChecksumMode   = "X-Amz-Checksum-Mode"
	hdrChecksumType   = "X-Amz-Checksum-Type"
)

// checksumHeaders are the object checksum headers S3 returns under
// x-amz-checksum-mode: ENABLED.
var checksumHeaders = []string{"X-Amz-Checksum-Crc32", "X-Amz-Checksum-Crc32c", "X-Amz-Checksum-Crc64nvme", "X-Amz-Checksum-Sha1", hdrChecksumSHA256}

// isObjectPut is a PutObject or CopyObject (not a part, tag set or ACL).
func isObjectPut(r *http.Request, key string) bool {
	q := r.URL.Query()
	return r.Method == http.MethodPut && key != "" && !q.Has("partNumber") && !q.Has("uploadId") && !q.Has("tagging") && !q.Has("acl")
}

// prepareChecksum verifies or computes a request's SHA-256 before
// gofakes3 stores the object. It returns a cleanup for a spooled body, or
// an error already written to w (false).
func (s *Service) prepareChecksum(w http.ResponseWriter, r *http.Request, key string) (func(), bool) {
	noop := func() {}
	if !isObjectPut(r, key) {
		return noop, true
	}
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		return noop, s.prepareCopyChecksum(w, r)
	}
	// gofakes3 merges the replaced object's metadata into the new one's;
	// a checksum of the old bytes must not survive on the new.
	blankAbsent(r.Header, nil)
	want := r.Header.Get(hdrChecksumSHA256)
	if want == "" {
		return noop, true
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		writeS3Error(w, http.StatusNotImplemented, "NotImplemented",
			"The local cloud's S3 verifies x-amz-checksum-sha256 only on a body sent whole, not aws-chunked; send the object without chunked signing (the AWS SDKs and CLI do over http)", r.URL.Path)
		return noop, false
	}
	// Spool to a file while hashing: the body is checked before gofakes3
	// replaces the object, and objects may be up to MaxObjectBytes.
	f, err := os.CreateTemp("", "s3-put-*")
	if err != nil {
		writeS3Error(w, http.StatusInternalServerError, "InternalError", "spooling the object to check its checksum: "+err.Error(), r.URL.Path)
		return noop, false
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r.Body)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "reading the object's body: "+err.Error(), r.URL.Path)
		return noop, false
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
		cleanup()
		writeS3Error(w, http.StatusBadRequest, "BadDigest", fmt.Sprintf("The SHA256 you specified did not match the calculated checksum (x-amz-checksum-sha256 %s, the body's %s).", want, got), r.URL.Path)
		return noop, false
	}
	r.Body, r.ContentLength = f, n
	return cleanup, true
}

// prepareCopyChecksum puts the source's SHA-256 on a CopyObject asking
// for one, so gofakes3 stores it with the copy (a request's x-amz-*
// headers override the source's metadata in its copy).
func (s *Service) prepareCopyChecksum(w http.ResponseWriter, r *http.Request) bool {
	algo := r.Header.Get(hdrChecksumAlgo)
	if algo != "" && !strings.EqualFold(algo, "SHA256") {
		writeS3Error(w, http.StatusNotImplemented, "NotImplemented", fmt.Sprintf("The local cloud's S3 computes SHA256 checksums only, not %s", algo), r.URL.Path)
		return false
	}
	srcBucket, srcKey, ok := parseCopySource(r.Header.Get("X-Amz-Copy-Source"))
	if !ok {
		return true // gofakes3 answers the bad source
	}
	obj, err := s.backend.HeadObject(srcBucket, srcKey)
	if err != nil {
		return true // gofakes3 answers NoSuchKey/NoSuchBucket
	}
	obj.Contents.Close()
	if want := r.Header.Get("X-Amz-Copy-Source-If-Match"); want != "" && !etagMatches(want, obj.Hash) {
		writePreconditionFailed(w, r)
		return false
	}
	// The copy carries the source's checksums (gofakes3 merges its
	// metadata in), and none of the object it replaces.
	defer blankAbsent(r.Header, obj.Metadata)
	if algo == "" {
		return true
	}
	sum := obj.Metadata[hdrChecksumSHA256]
	if sum == "" {
		full, err := s.backend.GetObject(srcBucket, srcKey, nil)
		if err != nil {
			return true
		}
		h := sha256.New()
		_, err = io.Copy(h, full.Contents)
		full.Contents.Close()
		if err != nil {
			writeS3Error(w, http.StatusInternalServerError, "InternalError", "reading the source to checksum it: "+err.Error(), r.URL.Path)
			return false
		}
		sum = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	r.Header.Set(hdrChecksumSHA256, sum)
	return true
}

// blankAbsent sets each checksum header that neither h nor keep has to
// "", so gofakes3's metadata merge cannot bring back an older object's
// (an empty one is never answered).
func blankAbsent(h http.Header, keep map[string]string) {
	for _, k := range checksumHeaders {
		if h.Get(k) == "" && keep[k] == "" {
			h.Set(k, "")
		}
	}
}

// checkIfMatch answers a GET or HEAD whose If-Match names another ETag
// than the object's with 412, as S3 does (gofakes3 honours If-Match on PUT
// only). It reports whether the request goes on.
func (s *Service) checkIfMatch(w http.ResponseWriter, r *http.Request, bucket, key string) bool {
	want := r.Header.Get("If-Match")
	if want == "" || key == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return true
	}
	obj, err := s.backend.HeadObject(bucket, key)
	if err != nil {
		return true // gofakes3 answers NoSuchKey/NoSuchBucket
	}
	obj.Contents.Close()
	if etagMatches(want, obj.Hash) {
		return true
	}
	writePreconditionFailed(w, r)
	return false
}

// etagMatches reports whether an If-Match value (an ETag, a list of them,
// or *) names the object whose MD5 is hash (gofakes3's ETag).
func etagMatches(header string, hash []byte) bool {
	etag := hex.EncodeToString(hash)
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.Trim(strings.TrimPrefix(v, "W/"), `"`) == etag {
			return true
		}
	}
	return false
}

func writePreconditionFailed(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusPreconditionFailed) // a HEAD answer has no body
		return
	}
	writeS3Error(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", r.URL.Path)
}

// parseCopySource reads x-amz-copy-source (bucket/key, URL-encoded, an
// optional ?versionId) as gofakes3 does.
func parseCopySource(src string) (bucket, key string, ok bool) {
	src = strings.TrimPrefix(src, "/")
	bucket, rest, found := strings.Cut(src, "/")
	if !found {
		dec, err := url.QueryUnescape(src)
		if err != nil {
			return "", "", false
		}
		bucket, key, found = strings.Cut(strings.TrimPrefix(dec, "/"), "/")
		key, _, _ = strings.Cut(key, "?")
		return bucket, key, found && bucket != "" && key != ""
	}
	rest, _, _ = strings.Cut(rest, "?")
	key, err := url.QueryUnescape(rest)
	return bucket, key, err == nil && bucket != "" && key != ""
}

// checksumWriter rewrites an object answer's headers (checksums only when
// asked for; never the stored request's algorithm headers) and, for a
// copy made with a checksum, adds it to CopyObjectResult.
type checksumWriter struct {
	http.ResponseWriter
	r        *http.Request
	copySum  string // the copy's SHA-256, its result buffered to add it
	buf      bytes.Buffer
	status   int
	wroteHdr bool
}

func (c *checksumWriter) WriteHeader(code int) {
	if c.wroteHdr {
		return
	}
	c.wroteHdr, c.status = true, code
	c.rewriteHeaders()
	if c.copySum != "" && code == http.StatusOK {
		c.Header().Del("Content-Length")
		return // written with the body, in finish
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *checksumWriter) rewriteHeaders() {
	h := c.Header()
	h.Del(hdrChecksumAlgo)
	h.Del(hdrSDKChecksum)
	if c.r.Method == http.MethodGet || c.r.Method == http.MethodHead {
		enabled := strings.EqualFold(c.r.Header.Get(hdrChecksumMode), "ENABLED")
		has := false
		for _, k := range checksumHeaders {
			if !enabled || h.Get(k) == "" {
				h.Del(k)
			} else {
				has = true
			}
		}
		if has {
			h.Set(hdrChecksumType, "FULL_OBJECT")
		}
	}
}

func (c *checksumWriter) Write(p []byte) (int, error) {
	if !c.wroteHdr {
		c.WriteHeader(http.StatusOK)
	}
	if c.copySum != "" && c.status == http.StatusOK {
		return c.buf.Write(p)
	}
	return c.ResponseWriter.Write(p)
}

// finish writes a buffered CopyObjectResult with the copy's checksum.
func (c *checksumWriter) finish() {
	if !c.wroteHdr {
		c.rewriteHeaders() // a HEAD answered with headers alone
		return
	}
	if c.copySum == "" || c.status != http.StatusOK || !c.wroteHdr {
		return
	}
	var res struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		Xmlns        string   `xml:"xmlns,attr,omitempty"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
		Checksum     string   `xml:"ChecksumSHA256,omitempty"`
		ChecksumType string   `xml:"ChecksumType,omitempty"`
	}
	body := c.buf.Bytes()
	if err := xml.Unmarshal(body, &res); err == nil {
		res.Xmlns, res.Checksum, res.ChecksumType = "http://s3.amazonaws.com/doc/2006-03-01/", c.copySum, "FULL_OBJECT"
		if out, err := xml.Marshal(res); err == nil {
			body = append([]byte(xml.Header), out...)
		}
	}
	c.ResponseWriter.WriteHeader(http.StatusOK)
	_, _ = c.ResponseWriter.Write(body)
}
