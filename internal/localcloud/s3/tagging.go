package s3

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// Bucket tagging (PutBucketTagging, GetBucketTagging, DeleteBucketTagging),
// which gofakes3 does not serve. handover finds an environment's buckets
// by their tags, as on AWS, where S3 has no "list buckets by tag" and a
// tool reads each bucket's tag set. The rules are S3's: a PUT replaces the
// whole set, at most 50 tags, keys 1-128 characters and unique, values at
// most 256, no "aws:" keys; a bucket without tags answers NoSuchTagSet.

const maxBucketTags = 50

// Tagging is S3's tag set document.
type Tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	TagSet  []Tag    `xml:"TagSet>Tag"`
}

// Tag is one tag of a tag set.
type Tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func (s *Service) serveTagging(w http.ResponseWriter, r *http.Request, bucket string) {
	if ok, err := s.backend.BucketExists(bucket); err != nil || !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", bucket)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		set, ok := s.tags[bucket]
		s.mu.Unlock()
		if !ok {
			writeS3Error(w, http.StatusNotFound, "NoSuchTagSet", "The TagSet does not exist", bucket)
			return
		}
		doc := Tagging{Xmlns: "http://s3.amazonaws.com/doc/2006-03-01/", TagSet: set}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = io.WriteString(w, xml.Header)
		_ = xml.NewEncoder(w).Encode(doc)
	case http.MethodPut:
		var doc Tagging
		if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&doc); err != nil {
			writeS3Error(w, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema: "+err.Error(), bucket)
			return
		}
		if err := checkTagSet(doc.TagSet); err != nil {
			writeS3Error(w, http.StatusBadRequest, "InvalidTag", err.Error(), bucket)
			return
		}
		s.mu.Lock()
		s.tags[bucket] = doc.TagSet
		err := s.saveTagsLocked()
		s.mu.Unlock()
		if err != nil {
			writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error(), bucket)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		if err := s.dropTags(bucket); err != nil {
			writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error(), bucket)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.", bucket)
	}
}

func checkTagSet(set []Tag) error {
	if len(set) > maxBucketTags {
		return fmt.Errorf("Object tags cannot be greater than %d", maxBucketTags)
	}
	seen := map[string]bool{}
	for _, t := range set {
		switch {
		case t.Key == "" || len(t.Key) > 128:
			return fmt.Errorf("The TagKey you have provided is invalid: %q (1 to 128 characters)", t.Key)
		case len(t.Value) > 256:
			return fmt.Errorf("The TagValue you have provided is too long: %d characters (at most 256)", len(t.Value))
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return fmt.Errorf("Your TagKey cannot be prefixed with aws: %q", t.Key)
		case seen[t.Key]:
			return fmt.Errorf("Cannot provide multiple Tags with the same key: %q", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// dropTags forgets a bucket's tags (DeleteBucketTagging, or the bucket
// deleted).
func (s *Service) dropTags(bucket string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tags[bucket]; !ok {
		return nil
	}
	delete(s.tags, bucket)
	return s.saveTagsLocked()
}

func (s *Service) tagsPath() string { return filepath.Join(s.cfg.DataDir, "bucket-tags.json") }

func (s *Service) loadTags() error {
	if _, err := statefile.ReadJSON(s.tagsPath(), &s.tags); err != nil {
		return fmt.Errorf("reading S3 bucket tags: %w", err)
	}
	if s.tags == nil {
		s.tags = map[string][]Tag{}
	}
	return nil
}

func (s *Service) saveTagsLocked() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	if err := statefile.WriteJSON(s.tagsPath(), s.tags); err != nil {
		return fmt.Errorf("saving S3 bucket tags: %w", err)
	}
	return nil
}
