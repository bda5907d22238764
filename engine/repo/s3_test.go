package repo_test

import (
	"context"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/s3store"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestRepositoryOnS3 runs the whole cycle on an S3 store (moto): packs go
// up with multipart uploads, restores use ranged reads, GC deletes objects.
func TestRepositoryOnS3(t *testing.T) {
	endpoint := testparts.Moto(t)
	bucket := testparts.MotoBucket(t, endpoint)
	ctx := context.Background()
	s3, err := s3store.New(ctx, s3store.Config{Bucket: bucket, Prefix: "repo", Region: testparts.MotoRegion, Endpoint: endpoint,
		ForcePathStyle: true, AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	env := repotest.New(t, repo.Options{})
	st := store.WithRetry(s3, store.DefaultRetryPolicy())
	r, err := repo.Open(ctx, st, index.New(env.Pool, env.RepoID+"-s3"), env.Master, repo.Options{PackSize: 6 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r.Index().SetTouchGranularity(0)
	writePoint(t, r, "a", "", seq(0, 600))
	writePoint(t, r, "b", "a", seq(500, 700))
	checkPoint(t, r, "a", seq(0, 600))
	checkPoint(t, r, "b", seq(500, 700))
	if v, err := r.Verify(ctx, nil); err != nil || !v.OK() || v.Packs < 2 {
		t.Fatalf("verify: %v %+v", err, v)
	}
	var before int
	st.List(ctx, repo.PacksPrefix, func(store.ObjectInfo) error { before++; return nil })
	if err := r.DeletePoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := r.GC(ctx, repo.GCOptions{Grace: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	rep, err := r.GC(ctx, repo.GCOptions{Grace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var after int
	st.List(ctx, repo.PacksPrefix, func(store.ObjectInfo) error { after++; return nil })
	if rep.DeletedPacks == 0 && after >= before {
		t.Fatalf("GC on S3 deleted nothing: %d packs before, %d after, %+v", before, after, rep)
	}
	checkPoint(t, r, "b", seq(500, 700))
}
