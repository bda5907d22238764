package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

func TestStorageLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	stgs := srv.Client.Storages()

	created, err := stgs.Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "local", Kind: "filesystem", Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Version != 1 || created.Path != dir || created.HasSecret {
		t.Fatalf("unexpected created storage: %+v", created)
	}
	// The probe wrote, read and deleted an object: nothing may be left behind
	// but (possibly) empty directories.
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			t.Errorf("probe left %s behind", p)
		}
		return nil
	})

	byName, err := stgs.Get(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	if byName.ID != created.ID {
		t.Fatalf("get by name found %s, want %s", byName.ID, created.ID)
	}

	dir2 := t.TempDir()
	updated, err := stgs.Update(ctx, created.ID, created.Version, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "local-2", Kind: "filesystem", Path: dir2}})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ID != created.ID || updated.Version != 2 || updated.Name != "local-2" || updated.Path != dir2 {
		t.Fatalf("update: %+v", updated)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) && !updated.UpdatedAt.Equal(created.UpdatedAt) {
		t.Fatalf("updated_at went backwards")
	}

	if err := stgs.Delete(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := stgs.Get(ctx, created.ID); !api.IsNotFound(err) {
		t.Fatalf("get after delete: %v, want 404", err)
	}
}

func TestPolicyDefaultsAndRoundTrip(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	spec := api.PolicySpec{
		Name: "gold", Description: "tier one", Timezone: "America/Los_Angeles",
		Full:                     api.FullSchedule{DaysOfWeek: []string{"WED"}, At: "12:00"},
		Incremental:              &api.IncrementalSchedule{EveryHours: 4},
		Retention:                api.Retention{DailyDays: 10, WeeklyWeeks: 5, MonthlyMonths: 12, YearlyYears: 3, LogDays: 7},
		LogBackupIntervalMinutes: 15, WindowHours: 6, BandwidthMbps: 200,
		PreFreezeScript: "#!/bin/sh\nsync\n",
	}
	p, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	// Normalization: lower-case days, default warm days, CBT on, script timeout.
	if !slices.Equal(p.Full.DaysOfWeek, []string{"wed"}) || p.Tiering.WarmDays != api.DefaultWarmDays ||
		p.CBT == nil || !*p.CBT || p.ScriptTimeoutSeconds != api.DefaultScriptTimeout || p.Tiering.ColdAfterDays != nil {
		t.Fatalf("defaults not applied: %+v", p.PolicySpec)
	}
	if p.Incremental == nil || p.Incremental.EveryHours != 4 || p.Retention != spec.Retention || p.BandwidthMbps != 200 {
		t.Fatalf("fields lost: %+v", p.PolicySpec)
	}
	cold := 365
	p.Tiering.ColdAfterDays = &cold
	p.Description = "tier one, archived"
	p2, err := srv.Client.Policies().Update(ctx, p.ID, p.Version, api.PolicyRequest{PolicySpec: p.PolicySpec})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Version != 2 || p2.Tiering.ColdAfterDays == nil || *p2.Tiering.ColdAfterDays != 365 || p2.Description != "tier one, archived" {
		t.Fatalf("update lost fields: %+v", p2.PolicySpec)
	}
	// A writer holding version 1 now loses.
	_, err = srv.Client.Policies().Update(ctx, p.ID, 1, api.PolicyRequest{PolicySpec: p.PolicySpec})
	var apiErr *api.Error
	if e, ok := err.(*api.Error); ok {
		apiErr = e
	}
	if apiErr == nil || apiErr.Status != http.StatusConflict || apiErr.Code != api.CodeStaleVersion {
		t.Fatalf("stale update: %v, want 409 stale_version", err)
	}
}

func TestListPagination(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("policy-%02d", i)
		want = append(want, name)
		if err := srv.Client.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON(name)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	token, pages := "", 0
	for {
		page, err := srv.Client.Policies().List(ctx, token, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Items {
			got = append(got, p.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("got %d pages %v, want 3 pages %v", pages, got, want)
	}
}

func TestCreateWithIdempotencyKeyIsRetrySafe(t *testing.T) {
	srv := servertest.Start(t)
	body := validPolicyJSON("retried")
	send := func() (int, api.Policy) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/backup-policies", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
		req.Header.Set("Idempotency-Key", "key-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p api.Policy
		json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	s1, p1 := send()
	s2, p2 := send()
	if s1 != http.StatusCreated || s2 != http.StatusOK || p1.ID == "" || p1.ID != p2.ID {
		t.Fatalf("first %d %s, retry %d %s: want 201 then 200 with the same id", s1, p1.ID, s2, p2.ID)
	}
}

func TestTokens(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()

	info, err := os.Stat(filepath.Join(srv.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", info.Mode().Perm())
	}

	ga, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "team-a", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	gaClient := srv.NewClient(t, ga.Secret)
	var who api.Token
	if err := gaClient.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &who); err != nil {
		t.Fatal(err)
	}
	if who.ID != ga.ID || who.Role != api.RoleGroupAdmin {
		t.Fatalf("whoami: %+v", who)
	}
	// A group admin reads global objects but may not write them.
	if _, err := gaClient.Storages().List(ctx, "", 0); err != nil {
		t.Fatalf("group_admin list: %v", err)
	}
	_, err = gaClient.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "x", Kind: "filesystem", Path: t.TempDir()}})
	if e, ok := err.(*api.Error); !ok || e.Status != http.StatusForbidden {
		t.Fatalf("group_admin create storage: %v, want 403", err)
	}

	// Listing never shows secrets.
	resp, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/tokens", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Set("Authorization", "Bearer "+srv.AdminToken)
	r, err := http.DefaultClient.Do(resp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if strings.Contains(string(raw), ga.Secret) || strings.Contains(string(raw), srv.AdminToken) {
		t.Fatal("token list reveals a secret")
	}
	if !strings.Contains(string(raw), ga.ID) || !strings.Contains(string(raw), "bootstrap-admin") {
		t.Fatalf("token list lacks tokens: %s", raw)
	}

	if err := srv.Client.RevokeToken(ctx, ga.ID); err != nil {
		t.Fatal(err)
	}
	err = gaClient.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, nil)
	if e, ok := err.(*api.Error); !ok || e.Status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %v, want 401", err)
	}
}

func TestHealthMetricsAndOpenAPI(t *testing.T) {
	srv := servertest.Start(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("readyz: %d %s", code, body)
	}
	if _, err := srv.Client.Storages().Get(context.Background(), "nothing-here"); !api.IsNotFound(err) {
		t.Fatalf("want 404, got %v", err)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`haven_http_requests_total{method="GET",route="/v1/storages/{id}",status="404"} 1`,
		`haven_http_request_duration_seconds_bucket{method="GET",route="/readyz"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	code, body = get("/v1/openapi.json")
	var doc map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["openapi"] == nil {
		t.Fatalf("openapi.json: %d", code)
	}
}
