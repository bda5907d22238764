package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
)

// metrics are per server instance, so several servers in one test process
// do not collide on a global registry. Two kinds live here: what this
// replica saw happen (requests, finished jobs, bytes moved), as counters
// and histograms that Prometheus sums over replicas; and the catalog's
// state (catalogCollector), read from the database at scrape time, so
// every replica reports the same values.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	jobDuration *prometheus.HistogramVec
	readBytes   prometheus.Counter
	newBytes    prometheus.Counter
	agentSent   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haven_http_requests_total", Help: "API requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "haven_http_request_duration_seconds", Help: "API request latency by route and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "haven_job_duration_seconds",
			Help: "Time from a job's first start to its final state, by kind and state, for jobs that ended on this replica.",
			// Half a second to a day and a half: a small fileset's backup
			// to a large VM's full.
			Buckets: prometheus.ExponentialBuckets(0.5, 4, 10),
		}, []string{"kind", "state"}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haven_backup_read_bytes_total",
			Help: "Logical bytes read from sources by the backups this replica committed.",
		}),
		newBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haven_backup_new_bytes_total",
			Help: "Bytes new to their repository (before compression) that the backups this replica committed stored.",
		}),
		agentSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haven_agent_sent_bytes_total",
			Help: "Bytes agents sent this replica in chunk uploads.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.jobDuration, m.readBytes, m.newBytes, m.agentSent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// JobFinished and PointCommitted make metrics the job service's
// jobs.Observer.
func (m *metrics) JobFinished(kind, state string, took time.Duration) {
	m.jobDuration.WithLabelValues(kind, state).Observe(took.Seconds())
}

func (m *metrics) PointCommitted(logicalBytes, newBytes int64) {
	m.readBytes.Add(float64(logicalBytes))
	m.newBytes.Add(float64(newBytes))
}

// handler serves the registry. A collector's error is logged and the rest
// is served, so one slow query never turns a scrape into a 500.
func (m *metrics) handler(log *slog.Logger) http.HandlerFunc {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}).ServeHTTP
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// catalogScrapeTimeout bounds the catalog's queries in one scrape: past
// it the scrape goes on without what they would have said.
const catalogScrapeTimeout = 3 * time.Second

// catalogCollector reports the catalog's state at scrape time: jobs by
// kind and state, each asset's latest success and the interval its policy
// promises, storages' bytes and maintenance, and agents' presence. A query
// that fails is logged and its metrics left out; the scrape never fails.
type catalogCollector struct {
	db  *db.DB
	log *slog.Logger
	// offlineAfter is how long an agent may be silent and count as online,
	// as for the API's agent_status.
	offlineAfter time.Duration
	now          func() time.Time
}

// newCatalogCollector reports d's catalog; offlineAfter zero is
// db.AgentOfflineAfter, as for the agent hub.
func newCatalogCollector(d *db.DB, log *slog.Logger, offlineAfter time.Duration) *catalogCollector {
	if offlineAfter <= 0 {
		offlineAfter = db.AgentOfflineAfter
	}
	return &catalogCollector{db: d, log: log, offlineAfter: offlineAfter, now: time.Now}
}

var (
	assetLabels   = []string{"asset_id", "asset_name", "kind"}
	storageLabels = []string{"storage_id", "storage"}
	agentLabels   = []string{"file_server_id", "file_server"}

	jobsDesc = prometheus.NewDesc("haven_jobs",
		"Jobs in the catalog by kind and state.", []string{"kind", "state"}, nil)
	queueDepthDesc = prometheus.NewDesc("haven_job_queue_depth",
		"Jobs queued and not running: waiting for a worker, a lock, an agent or a retry.", nil, nil)
	assetLastSuccessDesc = prometheus.NewDesc("haven_asset_last_success_timestamp_seconds",
		"When the asset's latest recovery point completed. Assets without one have no sample.", assetLabels, nil)
	assetIntervalDesc = prometheus.NewDesc("haven_asset_expected_interval_seconds",
		"The longest gap between two consecutive scheduled backups of the asset's policy over the last 64 days: "+
			"longer than this without a success means a backup was missed.", append(assetLabels, "policy"), nil)
	storageBytesDesc = prometheus.NewDesc("haven_storage_stored_bytes",
		"Bytes the storage's unexpired recovery points stored (after dedup and compression).", storageLabels, nil)
	lastVerify      = newLastRunDescs("verify", "verify")
	lastGC          = newLastRunDescs("gc", "garbage collection")
	agentOnlineDesc = prometheus.NewDesc("haven_agent_online",
		"1 if the file server's activated agent called in within the offline threshold, else 0.", agentLabels, nil)
	agentSeenDesc = prometheus.NewDesc("haven_agent_last_seen_timestamp_seconds",
		"When the file server's agent last called in.", agentLabels, nil)
	drLagDesc = prometheus.NewDesc("haven_dr_replication_lag_seconds",
		"Seconds since the recovery point that the VM's DR copy in AWS holds was taken, or, before its first copy, since its newest point was. "+
			"VMs without a point have no sample.", []string{"plan_id", "plan", "vm"}, nil)
)

// lastRunDescs describe a storage's latest maintenance job of one kind:
// when it finished and whether it succeeded.
type lastRunDescs struct{ at, ok *prometheus.Desc }

func newLastRunDescs(kind, what string) lastRunDescs {
	return lastRunDescs{
		at: prometheus.NewDesc("haven_storage_last_"+kind+"_timestamp_seconds",
			"When the storage's latest "+what+" that succeeded or failed finished.", storageLabels, nil),
		ok: prometheus.NewDesc("haven_storage_last_"+kind+"_success",
			"1 if the storage's latest "+what+" succeeded, 0 if it failed.", storageLabels, nil),
	}
}

// jobKinds and jobStates are reported even at zero, so that rules and
// graphs over them have a series from the start.
var (
	jobKinds  = []string{api.JobBackup, api.JobRestore, api.JobRestorePlan, api.JobVerify, api.JobGC, api.JobImport, api.JobDRReplicate, api.JobDRFailover, api.JobDRTest, api.JobDRCleanup, api.JobDRFailback}
	jobStates = []string{api.JobQueued, api.JobRunning, api.JobSucceeded, api.JobFailed, api.JobCanceled, api.JobSkipped}
)

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, queueDepthDesc, assetLastSuccessDesc, assetIntervalDesc,
		storageBytesDesc, lastVerify.at, lastVerify.ok, lastGC.at, lastGC.ok, agentOnlineDesc, agentSeenDesc, drLagDesc} {
		ch <- d
	}
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogScrapeTimeout)
	defer cancel()
	for _, part := range []struct {
		what    string
		collect func(context.Context, chan<- prometheus.Metric) error
	}{{"jobs", c.jobs}, {"assets", c.assets}, {"storages", c.storages}, {"agents", c.agents}, {"dr", c.dr}} {
		if err := part.collect(ctx, ch); err != nil {
			c.log.Warn("metrics: reading the catalog failed; leaving its metrics out of this scrape", "part", part.what, "error", err.Error())
		}
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (c *catalogCollector) jobs(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts, err := c.db.JobCounts(ctx)
	if err != nil {
		return err
	}
	type key struct{ kind, state string }
	byKey := map[key]int64{}
	for _, k := range jobKinds {
		for _, s := range jobStates {
			byKey[key{k, s}] = 0
		}
	}
	for _, n := range counts {
		byKey[key{n.Kind, n.State}] = n.Count
	}
	for k, n := range byKey {
		gauge(ch, jobsDesc, float64(n), k.kind, k.state)
	}
	var queued int64
	for _, n := range counts {
		if n.State == api.JobQueued {
			queued += n.Count
		}
	}
	gauge(ch, queueDepthDesc, float64(queued))
	return nil
}

func (c *catalogCollector) assets(ctx context.Context, ch chan<- prometheus.Metric) error {
	assets, err := c.db.AssetHealths(ctx)
	if err != nil {
		return err
	}
	type promise struct {
		name     string
		interval time.Duration
	}
	// Assets share policies: each policy's schedule is walked once.
	promises := map[string]*promise{}
	now := c.now()
	for _, a := range assets {
		if a.LastSuccess != nil {
			gauge(ch, assetLastSuccessDesc, unixSeconds(*a.LastSuccess), a.ID, a.Name, a.Kind)
		}
		if a.PolicySpec == nil {
			continue
		}
		p, ok := promises[a.PolicyID]
		if !ok {
			p = &promise{}
			var spec api.PolicySpec
			if err := json.Unmarshal(a.PolicySpec, &spec); err == nil {
				p.name = spec.Name
				p.interval = longestGap(&spec, now)
			}
			promises[a.PolicyID] = p
		}
		if p.interval > 0 {
			gauge(ch, assetIntervalDesc, p.interval.Seconds(), a.ID, a.Name, a.Kind, p.name)
		}
	}
	return nil
}

// intervalLookback is how far back longestGap looks: long enough for two
// monthly fulls whatever the month.
const intervalLookback = 64 * 24 * time.Hour

// longestGap is the longest time between consecutive slots of the policy
// in the lookback before now: a schedule of weekday incrementals has a
// weekend in it, and an alert on "no success for longer than this" must
// not fire every Monday. Zero if the schedule does not parse.
func longestGap(p *api.PolicySpec, now time.Time) time.Duration {
	s, err := schedule.New(p)
	if err != nil {
		return 0
	}
	var longest time.Duration
	var prev time.Time
	for slot := range s.Slots(now.Add(-intervalLookback)) {
		if !prev.IsZero() {
			longest = max(longest, slot.At.Sub(prev))
		}
		if slot.At.After(now) {
			break
		}
		prev = slot.At
	}
	return longest
}

func (c *catalogCollector) storages(ctx context.Context, ch chan<- prometheus.Metric) error {
	storages, err := c.db.StorageHealths(ctx)
	if err != nil {
		return err
	}
	for _, s := range storages {
		gauge(ch, storageBytesDesc, float64(s.StoredBytes), s.ID, s.Name)
		for _, last := range []struct {
			run db.MaintenanceRun
			lastRunDescs
		}{{s.LastVerify, lastVerify}, {s.LastGC, lastGC}} {
			if last.run.At == nil {
				continue
			}
			gauge(ch, last.at, unixSeconds(*last.run.At), s.ID, s.Name)
			gauge(ch, last.ok, boolValue(last.run.Succeeded), s.ID, s.Name)
		}
	}
	return nil
}

func (c *catalogCollector) agents(ctx context.Context, ch chan<- prometheus.Metric) error {
	agents, err := c.db.AgentsSeen(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	for _, a := range agents {
		online := a.LastSeen != nil && now.Sub(*a.LastSeen) < c.offlineAfter
		gauge(ch, agentOnlineDesc, boolValue(online), a.FileServerID, a.Name)
		if a.LastSeen != nil {
			gauge(ch, agentSeenDesc, unixSeconds(*a.LastSeen), a.FileServerID, a.Name)
		}
	}
	return nil
}

// dr reports each DR plan's VMs' replication lag.
func (c *catalogCollector) dr(ctx context.Context, ch chan<- prometheus.Metric) error {
	now := c.now()
	return c.db.Each(ctx, db.DRPlans, func(o db.Object) error {
		var spec api.DRPlanSpec
		if err := json.Unmarshal(o.Spec, &spec); err != nil {
			return err
		}
		st, err := drPlanStatus(ctx, c.db, o.ID, spec, now)
		if err != nil {
			return err
		}
		for _, v := range st.VMs {
			if v.LagSeconds != nil {
				gauge(ch, drLagDesc, float64(*v.LagSeconds), o.ID, spec.Name, v.Name)
			}
		}
		return nil
	})
}

// unixSeconds is t as Prometheus timestamps are: seconds since the epoch.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
