package awscloud

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/handover-dev/handover/internal/env"
)

// VerifyRDSAPI is the RDS call a verify makes besides a clone's: the
// delete of its scratch instances.
type VerifyRDSAPI interface {
	DeleteDBInstance(ctx context.Context, in *rds.DeleteDBInstanceInput, opts ...func(*rds.Options)) (*rds.DeleteDBInstanceOutput, error)
}

var _ VerifyRDSAPI = (*rds.Client)(nil)

// Verifier is env.VerifyCloud over a CloneBuilder's clients and
// VerifyRDSAPI.
type Verifier struct {
	b   *CloneBuilder
	del VerifyRDSAPI
}

var _ env.VerifyCloud = (*Verifier)(nil)

// NewVerifier returns a Verifier reading through b's clients and deleting
// scratch instances with del.
func NewVerifier(b *CloneBuilder, del VerifyRDSAPI) *Verifier { return &Verifier{b: b, del: del} }

// DeleteDBInstance implements env.VerifyCloud. It does not wait for the
// instance to go: a verify polls between steps, under its lease, rather
// than block a step for the minutes RDS takes.
func (v *Verifier) DeleteDBInstance(ctx context.Context, name string) error {
	_, err := v.del.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{
		DBInstanceIdentifier: aws.String(name), SkipFinalSnapshot: aws.Bool(true), DeleteAutomatedBackups: aws.Bool(true),
	})
	if err == nil || isCode(err, "DBInstanceNotFound") || isCode(err, "DBInstanceNotFoundFault") {
		return nil
	}
	if isCode(err, "InvalidDBInstanceState") || isCode(err, "InvalidDBInstanceStateFault") {
		// Already being deleted (a repeat), or busy: the caller polls
		// and asks again.
		if d, derr := v.b.dbInstance(ctx, name); derr == nil && aws.ToString(d.DBInstanceStatus) == "deleting" {
			return nil
		}
	}
	return fmt.Errorf("deleting RDS instance %s: %w", name, rdsErr(err))
}

// DBLogin implements env.VerifyCloud.
func (v *Verifier) DBLogin(ctx context.Context, instance string) (string, string, error) {
	d, err := v.b.dbInstance(ctx, instance)
	if err != nil {
		return "", "", err
	}
	return aws.ToString(d.MasterUsername), aws.ToString(d.DBName), nil
}

// ObjectSums implements env.VerifyCloud: each current object's stored
// SHA-256, or that of its bytes read back, as a clone's copy compares
// them; b's workers at once.
func (v *Verifier) ObjectSums(ctx context.Context, bucket string) (map[string]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(v.b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing bucket %s: %w", bucket, translate(err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	out := make(map[string]string, len(keys))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.b.workers)
	for _, k := range keys {
		g.Go(func() error {
			sum, _, err := v.b.objectSHA256(gctx, bucket, k, true)
			if err != nil {
				return err
			}
			mu.Lock()
			out[k] = sum
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
