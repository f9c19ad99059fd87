package s3

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestListObjectVersionsUnversioned lists a bucket of the bolt store (no
// versioning) by version through the SDK's paginator: every object once,
// as its latest version "null", in key order, across pages; then empties
// it by version and deletes it, as an environment abort does.
func TestListObjectVersionsUnversioned(t *testing.T) {
	ctx := t.Context()
	c, _ := newClient(t, t.TempDir(), nil)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 7 {
		k := fmt.Sprintf("k%02d", i)
		if i >= 5 {
			k = fmt.Sprintf("logs/k%02d", i)
		}
		keys = append(keys, k)
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(k), Body: strings.NewReader("body " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(in *awss3.ListObjectVersionsInput) (got []string, pages int) {
		t.Helper()
		in.Bucket = aws.String("bkt")
		p := awss3.NewListObjectVersionsPaginator(c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, v := range page.Versions {
				if aws.ToString(v.VersionId) != "null" || !aws.ToBool(v.IsLatest) || aws.ToInt64(v.Size) != int64(len("body ")+len(aws.ToString(v.Key))) || aws.ToString(v.ETag) == "" {
					t.Errorf("version of %s: id %q, latest %v, size %d, etag %q", aws.ToString(v.Key), aws.ToString(v.VersionId), aws.ToBool(v.IsLatest), aws.ToInt64(v.Size), aws.ToString(v.ETag))
				}
				got = append(got, aws.ToString(v.Key))
			}
			if len(page.DeleteMarkers) != 0 {
				t.Errorf("delete markers in an unversioned bucket: %v", page.DeleteMarkers)
			}
		}
		return got, pages
	}
	for _, tc := range []struct {
		name  string
		in    awss3.ListObjectVersionsInput
		want  []string
		pages int
	}{
		{"all", awss3.ListObjectVersionsInput{}, keys, 1},
		{"pages of 3", awss3.ListObjectVersionsInput{MaxKeys: aws.Int32(3)}, keys, 3},
		{"pages of 1", awss3.ListObjectVersionsInput{MaxKeys: aws.Int32(1)}, keys, 7},
		{"prefix", awss3.ListObjectVersionsInput{Prefix: aws.String("logs/")}, keys[5:], 1},
		{"after a key", awss3.ListObjectVersionsInput{KeyMarker: aws.String("k03")}, keys[4:], 1},
		{"after a key and its null version", awss3.ListObjectVersionsInput{KeyMarker: aws.String("k03"), VersionIdMarker: aws.String("null")}, keys[4:], 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := list(&tc.in)
			if !slices.Equal(got, tc.want) || pages != tc.pages {
				t.Errorf("listed %v in %d pages, want %v in %d", got, pages, tc.want, tc.pages)
			}
		})
	}
	if _, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("bkt"), KeyMarker: aws.String("k01"), VersionIdMarker: aws.String("3HL4kqtJlcpXroDTDmJ")}); err == nil {
		t.Error("a version-id marker no object has: listed, want InvalidArgument")
	}
	if _, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("nope")}); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("versions of a missing bucket: %v, want NoSuchBucket", err)
	}

	// Empty by version, then delete: what an abort does to a bucket.
	var ids []types.ObjectIdentifier
	for _, k := range keys {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(k), VersionId: aws.String("null")})
	}
	out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
	if err != nil || len(out.Errors) != 0 {
		t.Fatalf("deleting every version: %v %v", err, out)
	}
	if got, _ := list(&awss3.ListObjectVersionsInput{}); len(got) != 0 {
		t.Errorf("after deleting every version, listed %v", got)
	}
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Errorf("deleting the emptied bucket: %v", err)
	}
}

// FuzzVersionsPage: any query is read without a panic, into a page S3
// would list (1 to 1,000 keys), or refused.
func FuzzVersionsPage(f *testing.F) {
	for _, s := range []string{"versions", "versions&max-keys=3", "versions&key-marker=a&version-id-marker=null", "versions&version-id-marker=x", "versions&max-keys=-1&prefix=a/&delimiter=/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		prefix, page, msg, err := versionsPage(q)
		if err != nil {
			if msg == "" {
				t.Errorf("%q refused without a message", raw)
			}
			return
		}
		if page.MaxKeys < 1 || page.MaxKeys > 1000 {
			t.Errorf("%q: max keys %d", raw, page.MaxKeys)
		}
		if page.HasMarker != (page.Marker != "") || page.Marker != q.Get("key-marker") {
			t.Errorf("%q: marker %q (has %v)", raw, page.Marker, page.HasMarker)
		}
		if prefix.Prefix != q.Get("prefix") {
			t.Errorf("%q: prefix %q", raw, prefix.Prefix)
		}
	})
}
