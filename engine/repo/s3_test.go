package repo_test

import (
	"context"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
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

// TestTiersRespectDedup moves a cold point's packs to the cold class on S3,
// except packs a warm point also uses.
func TestTiersRespectDedup(t *testing.T) {
	endpoint := testparts.Moto(t)
	bucket := testparts.MotoBucket(t, endpoint)
	ctx := context.Background()
	s3, err := s3store.New(ctx, s3store.Config{Bucket: bucket, Region: testparts.MotoRegion, Endpoint: endpoint, ForcePathStyle: true,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, ColdStorageClass: "GLACIER"})
	if err != nil {
		t.Fatal(err)
	}
	env := repotest.New(t, repo.Options{})
	r, err := repo.Open(ctx, s3, index.New(env.Pool, env.RepoID+"-tiers"), env.Master, repo.Options{PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	writePoint(t, r, "old", "", seq(0, 60))   // packs of blocks 0..59
	writePoint(t, r, "new", "", seq(40, 100)) // shares 40..59 with old
	rep, err := r.ApplyTiers(ctx, []string{"new"}, []string{"old"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ToCold == 0 {
		t.Fatal("no pack moved to cold")
	}
	// Every pack the warm point reads is still warm; the cold ones are GLACIER.
	locs, err := r.Index().Locate(ctx, []format.ID{r.Hash(block(45, 16<<10)), r.Hash(block(5, 16<<10))})
	if err != nil {
		t.Fatal(err)
	}
	shared, onlyOld := locs[r.Hash(block(45, 16<<10))].Pack, locs[r.Hash(block(5, 16<<10))].Pack
	if info, _ := s3.Stat(ctx, repo.PackName(shared)); info.Class != store.ClassWarm {
		t.Errorf("a pack the warm point uses went %v", info.Class)
	}
	if info, _ := s3.Stat(ctx, repo.PackName(onlyOld)); info.Class != store.ClassCold {
		t.Errorf("a pack only the cold point uses is %v", info.Class)
	}
	// Running it again moves nothing more.
	if again, err := r.ApplyTiers(ctx, []string{"new"}, []string{"old"}); err != nil || again.ToCold != 0 {
		t.Fatalf("second pass: %+v %v", again, err)
	}
}
