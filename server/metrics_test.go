package server_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, srv *servertest.Server) scrape {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// find is the sample of name whose labels include labels, if any.
func (s scrape) find(name string, labels map[string]string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a gauge's or counter's value, zero if the sample is absent.
func (s scrape) value(name string, labels map[string]string) float64 {
	m := s.find(name, labels)
	switch {
	case m == nil:
		return 0
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return m.Untyped.GetValue()
}

// observations is how many observations a histogram's sample holds.
func (s scrape) observations(name string, labels map[string]string) uint64 {
	if m := s.find(name, labels); m != nil {
		return m.Histogram.GetSampleCount()
	}
	return 0
}

func (s scrape) mustHave(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	if s.find(name, labels) == nil {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return s.value(name, labels)
}

func sameInstant(t *testing.T, what string, got float64, want time.Time) {
	t.Helper()
	if math.Abs(got-float64(want.UnixNano())/1e9) > 1e-5 {
		t.Errorf("%s = %f, want %s (%f)", what, got, want, float64(want.UnixNano())/1e9)
	}
}

// TestMetrics scrapes a real server's /metrics around a server-local
// backup, a verify, a GC and an agent's backup, and checks the examples
// in examples/monitoring against what it exports.
func TestMetrics(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 2 * time.Second })
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)
	asset := map[string]string{"asset_id": set.ID, "asset_name": "docs", "kind": "fileset"}
	storage := map[string]string{"storage_id": set.StorageID, "storage": "local"}
	backupsSucceeded := map[string]string{"kind": api.JobBackup, "state": api.JobSucceeded}

	before := scrapeMetrics(t, srv)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		before.mustHave(t, name, nil)
	}
	before.mustHave(t, "haven_jobs", backupsSucceeded)
	before.mustHave(t, "haven_job_queue_depth", nil)
	if got := before.mustHave(t, "haven_storage_stored_bytes", storage); got != 0 {
		t.Errorf("stored bytes of an empty storage = %v", got)
	}
	if before.find("haven_asset_last_success_timestamp_seconds", asset) != nil {
		t.Error("an asset that was never backed up has a last success")
	}
	// The policy (validPolicyJSON) runs fulls on Sunday at 01:00 and
	// incrementals on Monday and Tuesday at 21:00: its longest gap is from
	// Tuesday 21:00 to Sunday 01:00, 100 hours, whatever daylight saving
	// does (it changes on Sundays after 01:00).
	if got := before.mustHave(t, "haven_asset_expected_interval_seconds", map[string]string{"asset_id": set.ID, "policy": "daily"}); got != 100*3600 {
		t.Errorf("expected interval = %vs, want 100 h", got)
	}

	var point *api.Point
	t.Run("a backup moves them", func(t *testing.T) {
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup: %+v", j)
		}
		if point, err = srv.Client.GetPoint(ctx, j.PointID); err != nil {
			t.Fatal(err)
		}
		if point.LogicalBytes == 0 || point.NewBytes == 0 || point.StoredBytes == 0 {
			t.Fatalf("point without bytes: %+v", point)
		}
		// A backup's point commit shows the job succeeded; its worker
		// observes the duration as it returns, a moment later.
		waitMetric(t, srv, "the backup's duration", func(s scrape) bool { return s.observations("haven_job_duration_seconds", backupsSucceeded) > 0 })
		after := scrapeMetrics(t, srv)
		if d := after.value("haven_jobs", backupsSucceeded) - before.value("haven_jobs", backupsSucceeded); d != 1 {
			t.Errorf("succeeded backups went up by %v, want 1", d)
		}
		if n := after.observations("haven_job_duration_seconds", backupsSucceeded); n != 1 {
			t.Errorf("backup durations observed: %d, want 1", n)
		}
		for name, want := range map[string]int64{"haven_backup_read_bytes_total": point.LogicalBytes, "haven_backup_new_bytes_total": point.NewBytes} {
			if d := after.mustHave(t, name, nil) - before.value(name, nil); d != float64(want) {
				t.Errorf("%s went up by %v, want the point's %d", name, d, want)
			}
		}
		sameInstant(t, "last success", after.mustHave(t, "haven_asset_last_success_timestamp_seconds", asset), point.CompletedAt)
		if got := after.mustHave(t, "haven_storage_stored_bytes", storage); got != float64(point.StoredBytes) {
			t.Errorf("storage bytes = %v, want the point's %d", got, point.StoredBytes)
		}
		after.mustHave(t, "haven_job_queue_depth", nil)
	})

	t.Run("verify and GC report their last results", func(t *testing.T) {
		for _, kind := range []string{"verify", "gc"} {
			var j api.Job
			if err := srv.Client.Do(ctx, http.MethodPost, "/v1/storages/"+set.StorageID+"/"+kind, nil, struct{}{}, &j); err != nil {
				t.Fatal(err)
			}
			done := waitJob(t, srv, j.ID)
			if done.State != api.JobSucceeded || done.FinishedAt == nil {
				t.Fatalf("%s: %+v", kind, done)
			}
			s := scrapeMetrics(t, srv)
			sameInstant(t, kind+" timestamp", s.mustHave(t, "haven_storage_last_"+kind+"_timestamp_seconds", storage), *done.FinishedAt)
			if ok := s.mustHave(t, "haven_storage_last_"+kind+"_success", storage); ok != 1 {
				t.Errorf("last %s success = %v, want 1", kind, ok)
			}
			if n := s.observations("haven_job_duration_seconds", map[string]string{"kind": kind, "state": api.JobSucceeded}); n != 1 {
				t.Errorf("%s durations observed: %d, want 1", kind, n)
			}
		}
	})

	t.Run("agents: online, bytes sent, offline", func(t *testing.T) {
		remote := t.TempDir()
		writeSampleTree(t, remote)
		fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
			Name: "remote", Hostname: "remote.example", OS: "linux", Location: "agent"}})
		if err != nil {
			t.Fatal(err)
		}
		rset, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "remote-docs",
			FileServerID: fsrv.ID, IncludePaths: []string{remote}, PolicyID: set.PolicyID, StorageID: set.StorageID}})
		if err != nil {
			t.Fatal(err)
		}
		agentLabels := map[string]string{"file_server_id": fsrv.ID, "file_server": "remote"}
		runCtx, stop := context.WithCancel(ctx)
		stopped := make(chan error, 1)
		go func() {
			stopped <- agent.Run(runCtx, agent.Config{Server: srv.URL, ActivationToken: fsrv.ActivationToken, StateDir: t.TempDir(), PollWait: time.Second})
		}()
		stopAgent := func() {
			if stop != nil {
				stop()
				stop = nil
				if err := <-stopped; err != nil {
					t.Errorf("agent: %v", err)
				}
			}
		}
		defer stopAgent()
		waitMetric(t, srv, "the agent online", func(s scrape) bool { return s.value("haven_agent_online", agentLabels) == 1 })

		start := scrapeMetrics(t, srv)
		j, err := srv.Client.BackupNow(ctx, rset.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("agent backup: %+v", j)
		}
		p, err := srv.Client.GetPoint(ctx, j.PointID)
		if err != nil {
			t.Fatal(err)
		}
		// The point's bytes are counted just after its commit, which the
		// job may show as succeeded a moment before.
		waitMetric(t, srv, "the agent's backup to be counted", func(s scrape) bool {
			return s.value("haven_backup_read_bytes_total", nil)-start.value("haven_backup_read_bytes_total", nil) >= float64(p.LogicalBytes)
		})
		end := scrapeMetrics(t, srv)
		// The agent sent every new chunk's bytes, framed.
		if sent := end.mustHave(t, "haven_agent_sent_bytes_total", nil) - start.value("haven_agent_sent_bytes_total", nil); sent < float64(p.NewBytes) || p.NewBytes == 0 {
			t.Errorf("agents sent %v bytes for a point with %d new bytes", sent, p.NewBytes)
		}
		if d := end.value("haven_backup_read_bytes_total", nil) - start.value("haven_backup_read_bytes_total", nil); d != float64(p.LogicalBytes) {
			t.Errorf("an agent's backup added %v read bytes, want the point's %d", d, p.LogicalBytes)
		}
		sameInstant(t, "agent asset's last success", end.mustHave(t, "haven_asset_last_success_timestamp_seconds",
			map[string]string{"asset_id": rset.ID, "asset_name": "remote-docs", "kind": "fileset"}), p.CompletedAt)

		stopAgent()
		waitMetric(t, srv, "the agent offline", func(s scrape) bool {
			return s.find("haven_agent_online", agentLabels) != nil && s.value("haven_agent_online", agentLabels) == 0
		})
		scrapeMetrics(t, srv).mustHave(t, "haven_agent_last_seen_timestamp_seconds", agentLabels)
		// The API says so too, by the same configured threshold.
		if f, err := srv.Client.FileServers().Get(ctx, fsrv.ID); err != nil || f.AgentStatus != "offline" {
			t.Errorf("the API's status of the agent the metrics show offline: %q (%v), want offline", f.AgentStatus, err)
		}
	})

	// By now every metric has samples, so a name the examples use and the
	// server does not export shows.
	exported := scrapeMetrics(t, srv)

	t.Run("the alert rules use exported metrics", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join("..", "examples", "monitoring", "prometheus-rules.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var rules struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := yaml.UnmarshalStrict(b, &rules); err != nil {
			t.Fatalf("prometheus-rules.yml: %v", err)
		}
		var exprs []string
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
					t.Errorf("group %s: incomplete rule %+v", g.Name, r)
				}
				if r.For != "" {
					if _, err := model.ParseDuration(r.For); err != nil {
						t.Errorf("rule %s: for: %v", r.Alert, err)
					}
				}
				exprs = append(exprs, r.Expr)
			}
		}
		used := checkMetricNames(t, "prometheus-rules.yml", exprs, exported)
		// The alerts the issue asks for: a missed backup per policy
		// schedule, a failed verify, an offline agent.
		for _, name := range []string{"haven_asset_last_success_timestamp_seconds", "haven_asset_expected_interval_seconds",
			"haven_storage_last_verify_success", "haven_agent_online"} {
			if !used[name] {
				t.Errorf("no alert rule uses %s", name)
			}
		}
	})

	t.Run("the dashboard uses exported metrics", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join("..", "examples", "monitoring", "grafana-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		var dash any
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("grafana-dashboard.json: %v", err)
		}
		var exprs []string
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && (k == "expr" || k == "query") {
						exprs = append(exprs, s)
					}
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(dash)
		used := checkMetricNames(t, "grafana-dashboard.json", exprs, exported)
		for _, name := range []string{"haven_asset_last_success_timestamp_seconds", "haven_jobs", "haven_job_queue_depth",
			"haven_backup_read_bytes_total", "haven_backup_new_bytes_total", "haven_agent_sent_bytes_total",
			"haven_storage_stored_bytes", "haven_agent_online"} {
			if !used[name] {
				t.Errorf("no dashboard panel uses %s", name)
			}
		}
	})
}

// metricName matches the names of Haven's own and its Go runtime's
// metrics in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:haven|go|process)_[a-zA-Z0-9_]+`)

// checkMetricNames fails for each metric an expression names that the
// server does not export (a histogram's _bucket, _sum and _count series
// count as its family's), and returns the names used.
func checkMetricNames(t *testing.T, file string, exprs []string, exported scrape) map[string]bool {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s has no expressions", file)
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used[name] = true
			if exported[name] != nil {
				continue
			}
			family := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				family = strings.TrimSuffix(family, suffix)
			}
			if f := exported[family]; family == name || f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
				t.Errorf("%s uses %s, which the server does not export (in %q)", file, name, e)
			}
		}
	}
	return used
}

// waitMetric scrapes until cond holds, for at most 30 seconds.
func waitMetric(t *testing.T, srv *servertest.Server, what string, cond func(scrape) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if cond(scrapeMetrics(t, srv)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in /metrics", what)
		}
	}
}
