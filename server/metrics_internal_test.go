package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// TestMetricsScrapeSurvivesTheCatalogFailing: when the catalog cannot be
// read (here its pool is closed), a scrape still answers 200 with what
// this replica knows, and the failure is logged, never a 500 that would
// blind every alert on the replica.
func TestMetricsScrapeSurvivesTheCatalogFailing(t *testing.T) {
	pool, err := db.Connect(context.Background(), testparts.PostgresURL(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	// Collect runs on the scraping goroutine, which has returned by
	// the time the logs are read.
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	m := newMetrics()
	m.registry.MustRegister(newCatalogCollector(&db.DB{Pool: pool}, log, 0))
	rec := httptest.NewRecorder()
	m.handler(log)(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape with the catalog unreadable: %d\n%s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Errorf("the scrape lost this replica's own metrics:\n%s", rec.Body)
	}
	if strings.Contains(rec.Body.String(), "haven_jobs") {
		t.Errorf("the scrape reports catalog metrics it could not read:\n%s", rec.Body)
	}
	if n := strings.Count(logs.String(), "reading the catalog failed"); n != 5 {
		t.Errorf("logged %d catalog failures, want one per part (5):\n%s", n, logs)
	}
}

// TestMetricExpectedIntervalIsThePolicysLongestGap pins
// haven_asset_expected_interval_seconds: the longest gap between two
// consecutive slots around now, not the latest or the shortest one, so a
// missed-backup alert neither fires every Monday nor waits a week.
func TestMetricExpectedIntervalIsThePolicysLongestGap(t *testing.T) {
	wednesday := time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC)
	weekly := api.FullSchedule{DaysOfWeek: []string{"sat"}, At: "22:00"}
	for _, c := range []struct {
		name   string
		policy api.PolicySpec
		now    time.Time
		want   time.Duration
	}{
		{"every four hours", api.PolicySpec{Timezone: "UTC", Full: weekly, Incremental: &api.IncrementalSchedule{EveryHours: 4}}, wednesday, 4 * time.Hour},
		// Weekday incrementals and a Saturday full leave Sunday out: the
		// gap from Saturday's full to Monday's incremental is 48 hours,
		// though on a Wednesday the latest gap is 24.
		{"weekdays and a Saturday full", api.PolicySpec{Timezone: "UTC", Full: weekly,
			Incremental: &api.IncrementalSchedule{DaysOfWeek: []string{"mon", "tue", "wed", "thu", "fri"}, At: "22:00"}}, wednesday, 48 * time.Hour},
		{"weekly fulls only", api.PolicySpec{Timezone: "UTC", Full: weekly}, wednesday, 7 * 24 * time.Hour},
		// Fulls on the 31st run on the month's last day: 31 January, 28
		// February, then 31 March, 31 days after, which the gap running
		// on 15 March already counts.
		{"monthly on the 31st", api.PolicySpec{Timezone: "UTC", Full: api.FullSchedule{DayOfMonth: 31, At: "00:00"}},
			time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), 31 * 24 * time.Hour},
		{"a schedule that does not parse", api.PolicySpec{Timezone: "UTC"}, wednesday, 0},
	} {
		if got := longestGap(&c.policy, c.now); got != c.want {
			t.Errorf("%s: longest gap %v, want %v", c.name, got, c.want)
		}
	}
}
