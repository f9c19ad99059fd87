package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// TestChecksumSHA256 runs S3's SHA-256 additional checksums through the
// SDK: a PUT's is verified and kept, HEAD and GET return it only in
// checksum mode, a copy asking for one gets the source's (stored or
// computed) in its result and on the copy, and all of it survives a
// restart.
func TestChecksumSHA256(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, svc := newClient(t, dir, nil)
	for _, b := range []string{"src", "dst"} {
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	body := []byte("hello, checksums")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("a/with sum"), Body: bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); err != nil {
		t.Fatal(err)
	}
	// An object stored without one (in-process, as the access logs are).
	if err := svc.PutObject(ctx, "src", "no+sum", []byte("plain bytes")); err != nil {
		t.Fatal(err)
	}

	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("a/with sum"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(h.ChecksumSHA256) != sum256(body) {
		t.Fatalf("HEAD in checksum mode: %q, %v; want %s", aws.ToString(h.ChecksumSHA256), err, sum256(body))
	}
	h, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("a/with sum")})
	if err != nil || h.ChecksumSHA256 != nil {
		t.Errorf("HEAD without checksum mode returned checksum %q (%v); S3 returns none", aws.ToString(h.ChecksumSHA256), err)
	}

	for _, tt := range []struct{ key, want string }{{"a/with sum", sum256(body)}, {"no+sum", sum256([]byte("plain bytes"))}} {
		out, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String(tt.key),
			CopySource: aws.String("src/" + strings.ReplaceAll(strings.ReplaceAll(tt.key, " ", "%20"), "+", "%2B")), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
		if err != nil {
			t.Fatalf("copy %s: %v", tt.key, err)
		}
		if got := aws.ToString(out.CopyObjectResult.ChecksumSHA256); got != tt.want {
			t.Errorf("copy %s: result checksum %q, want %s", tt.key, got, tt.want)
		}
		g, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("dst"), Key: aws.String(tt.key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, g.Body) // the SDK validates the checksum as it reads
		g.Body.Close()
		if aws.ToString(g.ChecksumSHA256) != tt.want {
			t.Errorf("GET of copy %s: checksum %q, want %s", tt.key, aws.ToString(g.ChecksumSHA256), tt.want)
		}
	}

	// A wrong checksum is refused and the stored object kept.
	req, _ := http.NewRequest(http.MethodPut, srvURL(t, c)+"/src/a/with%20sum", strings.NewReader("tampered body!!!"))
	req.Header.Set("x-amz-checksum-sha256", sum256(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "BadDigest") {
		t.Errorf("PUT with a wrong checksum: %d %s, want 400 BadDigest", resp.StatusCode, msg)
	}
	g, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("src"), Key: aws.String("a/with sum")})
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := io.ReadAll(g.Body)
	g.Body.Close()
	if !bytes.Equal(kept, body) {
		t.Errorf("a refused PUT replaced the object: %q", kept)
	}

	// A PUT without a checksum replaces the object's: none is left of
	// the old bytes (gofakes3 would merge the old metadata in).
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("dst"), Key: aws.String("a/with sum"), Body: strings.NewReader("new bytes")}); err != nil {
		t.Fatal(err)
	}
	h, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("a/with sum"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || h.ChecksumSHA256 != nil {
		t.Errorf("after a PUT without a checksum: SHA-256 %q (%v), want none", aws.ToString(h.ChecksumSHA256), err)
	}
	// Nor does a copy from a source without one.
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("no+sum"), CopySource: aws.String("dst/a/with%20sum")}); err != nil {
		t.Fatal(err)
	}
	h, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("no+sum"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || h.ChecksumSHA256 != nil {
		t.Errorf("after a copy without a checksum over one with: SHA-256 %q (%v), want none", aws.ToString(h.ChecksumSHA256), err)
	}
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("no+sum"), CopySource: aws.String("src/no%2Bsum"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); err != nil {
		t.Fatal(err)
	}

	// Restart: the checksums are kept with the objects.
	svc.Close()
	c2, _ := newClient(t, dir, nil)
	h, err = c2.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("no+sum"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(h.ChecksumSHA256) != sum256([]byte("plain bytes")) {
		t.Errorf("after a restart: %q, %v", aws.ToString(h.ChecksumSHA256), err)
	}
}

// TestIfMatch: a GET, HEAD or copy conditional on another ETag than the
// object's is refused with 412 PreconditionFailed; on its own, it goes on.
func TestIfMatch(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t, t.TempDir(), nil)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cond")}); err != nil {
		t.Fatal(err)
	}
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("cond"), Key: aws.String("k"), Body: strings.NewReader("v1")})
	if err != nil {
		t.Fatal(err)
	}
	etag, stale := aws.ToString(put.ETag), `"00000000000000000000000000000000"`
	if _, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("cond"), Key: aws.String("k"), IfMatch: aws.String(stale)}); code(err) != "PreconditionFailed" {
		t.Errorf("GET If-Match another ETag: %v, want PreconditionFailed", err)
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("cond"), Key: aws.String("k"), IfMatch: aws.String(stale)}); err == nil || !strings.Contains(err.Error(), "412") {
		t.Errorf("HEAD If-Match another ETag: %v, want 412", err)
	}
	g, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("cond"), Key: aws.String("k"), IfMatch: aws.String(etag)})
	if err != nil {
		t.Fatalf("GET If-Match its ETag: %v", err)
	}
	g.Body.Close()
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("cond"), Key: aws.String("k2"), CopySource: aws.String("cond/k"),
		CopySourceIfMatch: aws.String(stale)}); code(err) != "PreconditionFailed" {
		t.Errorf("copy if-match another ETag: %v, want PreconditionFailed", err)
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("cond"), Key: aws.String("k2")}); err == nil {
		t.Error("a refused copy made the object")
	}
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("cond"), Key: aws.String("k2"), CopySource: aws.String("cond/k"),
		CopySourceIfMatch: aws.String(etag)}); err != nil {
		t.Errorf("copy if-match its ETag: %v", err)
	}
}

// srvURL is the endpoint c was made with.
func srvURL(t *testing.T, c *awss3.Client) string {
	t.Helper()
	return aws.ToString(c.Options().BaseEndpoint)
}

// TestChecksumSHA256CLI: the AWS CLI's put-object --checksum-algorithm
// SHA256, head-object --checksum-mode ENABLED and copy-object
// --checksum-algorithm SHA256 see S3's answers.
func TestChecksumSHA256CLI(t *testing.T) {
	if _, err := os.Stat("/usr/bin/aws"); err != nil {
		t.Skip("no AWS CLI at /usr/bin/aws (make deps installs it)")
	}
	svc, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	run := func(args ...string) (stdout, stderr string, err error) {
		cmd := exec.Command("/usr/bin/aws", append([]string{"--endpoint-url", srv.URL, "--output", "json", "s3api"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		return out.String(), errb.String(), err
	}
	refused := func(says string, args ...string) {
		t.Helper()
		if _, stderr, err := run(args...); err == nil || !strings.Contains(stderr, says) {
			t.Errorf("aws s3api %s: %v, %s; want it refused with %s", strings.Join(args, " "), err, stderr, says)
		}
	}
	cli := func(args ...string) map[string]any {
		t.Helper()
		stdout, stderr, err := run(args...)
		if err != nil {
			t.Fatalf("aws s3api %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		out := bytes.NewBufferString(stdout)
		m := map[string]any{}
		if out.Len() > 0 {
			if err := json.Unmarshal(out.Bytes(), &m); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
		}
		return m
	}
	file := filepath.Join(t.TempDir(), "obj")
	body := []byte("from the CLI")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cli("create-bucket", "--bucket", "src")
	cli("create-bucket", "--bucket", "dst")
	put := cli("put-object", "--bucket", "src", "--key", "k", "--body", file, "--checksum-algorithm", "SHA256")
	if put["ChecksumSHA256"] != nil && put["ChecksumSHA256"] != sum256(body) {
		t.Errorf("put-object answered checksum %v", put["ChecksumSHA256"])
	}
	if h := cli("head-object", "--bucket", "src", "--key", "k", "--checksum-mode", "ENABLED"); h["ChecksumSHA256"] != sum256(body) {
		t.Errorf("head-object --checksum-mode ENABLED: %v, want %s", h, sum256(body))
	}
	if h := cli("head-object", "--bucket", "src", "--key", "k"); h["ChecksumSHA256"] != nil {
		t.Errorf("head-object without checksum mode returned %v", h["ChecksumSHA256"])
	}
	cp := cli("copy-object", "--bucket", "dst", "--key", "k", "--copy-source", "src/k", "--checksum-algorithm", "SHA256")
	if r, _ := cp["CopyObjectResult"].(map[string]any); r == nil || r["ChecksumSHA256"] != sum256(body) {
		t.Errorf("copy-object: %v, want ChecksumSHA256 %s", cp, sum256(body))
	}
	stale := `"00000000000000000000000000000000"`
	refused("PreconditionFailed", "copy-object", "--bucket", "dst", "--key", "k3", "--copy-source", "src/k", "--copy-source-if-match", stale)
	refused("412", "head-object", "--bucket", "src", "--key", "k", "--if-match", stale)
	refused("BucketAlreadyOwnedByYou", "create-bucket", "--bucket", "src")
}

// TestCopyWhileTheStoreGrows: copies that grow the object store. gofakes3
// reads a copy's source hash after writing the copy, from bytes aliasing
// bolt's memory map, which the growth remapped: the process faulted
// (SIGSEGV) until the map was made big enough never to move.
func TestCopyWhileTheStoreGrows(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t, t.TempDir(), nil)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("grow")}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("grow"), Key: aws.String("src"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		key := "copy-" + string(rune('a'+i))
		if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("grow"), Key: aws.String(key), CopySource: aws.String("grow/src")}); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseCopySource: any x-amz-copy-source is parsed or refused without
// a panic, and a bucket/key sent URL-encoded (as the SDKs and handover
// encode it) comes back as it was.
func FuzzParseCopySource(f *testing.F) {
	for _, s := range [][2]string{{"src", "a/with sum"}, {"src", "no+sum"}, {"b", "ü/%41?x"}, {"bkt", "/"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, bucket, key string) {
		parseCopySource(bucket + "/" + key) // raw: must not panic
		if bucket == "" || strings.ContainsAny(bucket, "/?%+") || key == "" {
			return
		}
		segs := strings.Split(key, "/")
		for i, s := range segs {
			segs[i] = strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
		}
		b, k, ok := parseCopySource("/" + bucket + "/" + strings.Join(segs, "/") + "?versionId=1")
		if !ok || b != bucket || k != key {
			t.Fatalf("parseCopySource of %q/%q = %q, %q, %v", bucket, key, b, k, ok)
		}
	})
}
