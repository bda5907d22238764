package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// BenchmarkBackupPath backs up the same tree (HAVEN_BENCH_DATASET, a
// make-dataset directory; its files/ tree) through a server-local file
// server and through an agent, each into a fresh storage, and reports
// MB/s. It is the measurement behind packing on the server (see
// templates/guides/agents.md.tmpl).
func BenchmarkBackupPath(b *testing.B) {
	ds := os.Getenv("HAVEN_BENCH_DATASET")
	if ds == "" {
		b.Skip("set HAVEN_BENCH_DATASET to a make-dataset directory")
	}
	src := filepath.Join(ds, "files")
	for _, location := range []string{api.LocationServer, api.LocationAgent} {
		b.Run(location, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				srv := startServer(b)
				ctx := context.Background()
				stg, _ := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: "filesystem", Path: b.TempDir()}})
				pol, _ := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "p", Timezone: "UTC",
					Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
				fsrv, _ := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "h", Hostname: "h", OS: "linux", Location: location}})
				set, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "f", FileServerID: fsrv.ID,
					IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: stg.ID}})
				if err != nil {
					b.Fatal(err)
				}
				if location == api.LocationAgent {
					runAgent(b, srv.URL, fsrv.ActivationToken, b.TempDir())
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
						if f, _ := srv.Client.FileServers().Get(ctx, fsrv.ID); f.AgentStatus == "online" {
							break
						}
					}
				}
				b.StartTimer()
				j, err := srv.Client.BackupNow(ctx, set.ID)
				if err != nil {
					b.Fatal(err)
				}
				done := waitJob(b, srv, j.ID)
				b.StopTimer()
				if done.State != api.JobSucceeded {
					b.Fatalf("%+v", done)
				}
				b.SetBytes(done.Progress.BytesDone)
			}
		})
	}
}
