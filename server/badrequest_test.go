package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// rawCall sends a request exactly as given, bypassing the typed client, so
// the server sees malformed input.
func rawCall(t *testing.T, srv *servertest.Server, method, path, token, body string, header map[string]string) (int, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s %s: status %d with a body that is not the error shape: %s", method, path, resp.StatusCode, data)
		}
		return resp.StatusCode, *eb.Error
	}
	return resp.StatusCode, api.Error{}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// edit returns the JSON of base with the top-level or nested key replaced.
func edit(base string, path string, value any) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		panic(err)
	}
	keys := strings.Split(path, ".")
	cur := m
	for _, k := range keys[:len(keys)-1] {
		cur = cur[k].(map[string]any)
	}
	if value == nil {
		delete(cur, keys[len(keys)-1])
	} else {
		cur[keys[len(keys)-1]] = value
	}
	return mustJSON(m)
}

func validPolicyJSON(name string) string {
	return mustJSON(api.PolicySpec{
		Name: name, Timezone: "Europe/Paris",
		Full:        api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"},
		Incremental: &api.IncrementalSchedule{DaysOfWeek: []string{"mon", "tue"}, At: "21:00"},
		Retention:   api.Retention{DailyDays: 14, WeeklyWeeks: 4},
	})
}

// TestBadRequests sends each kind of bad input and checks that it gets a
// 4xx naming the field at fault, in the API's error shape, and never a 500.
func TestBadRequests(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	admin := srv.AdminToken

	readOnly, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "auditor", Role: api.RoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	operator, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "ops", Role: api.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "leaver", Role: api.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}

	fsDir := t.TempDir()
	goodFS := mustJSON(api.StorageSpec{Name: "local", Kind: "filesystem", Path: fsDir})
	goodS3 := mustJSON(api.StorageSpec{Name: "cloud", Kind: "s3", Bucket: "haven-backups", Endpoint: "http://127.0.0.1:1"})
	goodPolicy := validPolicyJSON("gold")

	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "existing", Kind: "filesystem", Path: fsDir}})
	if err != nil {
		t.Fatal(err)
	}
	// Move the storage to version 2 so version 1 is stale.
	if _, err := srv.Client.Storages().Update(ctx, stg.ID, 1, api.StorageRequest{StorageSpec: stg.StorageSpec}); err != nil {
		t.Fatal(err)
	}
	var pol api.Policy
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(goodPolicy), &pol); err != nil {
		t.Fatal(err)
	}

	// The agent's fileset has a storage of its own, so deleting stg is not
	// refused for being in use.
	agentStg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "agent", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	agentToken, agentJob := agentWithJob(t, srv, agentStg.ID, pol.ID)
	agentJobPath := "/v1/agent/jobs/" + agentJob
	unknownChunk := strings.Repeat("ab", 32)

	storagePath := "/v1/storages"
	policyPath := "/v1/backup-policies"
	cases := []struct {
		name, method, path, token, body string
		header                          map[string]string
		status                          int
		field                           string
	}{
		// Body shape.
		{"malformed JSON", "POST", storagePath, admin, `{"name":`, nil, 400, "body"},
		{"not JSON", "POST", storagePath, admin, `hello`, nil, 400, "body"},
		{"empty body", "POST", storagePath, admin, ``, map[string]string{"Content-Type": "application/json"}, 400, "body"},
		{"two JSON values", "POST", storagePath, admin, goodFS + goodFS, nil, 400, "body"},
		{"unknown field", "POST", storagePath, admin, edit(goodFS, "colour", "blue"), nil, 400, "colour"},
		{"wrong type name", "POST", storagePath, admin, edit(goodFS, "name", 5), nil, 400, "name"},
		{"wrong type force_path_style", "POST", storagePath, admin, edit(goodS3, "force_path_style", "yes"), nil, 400, "force_path_style"},
		{"oversize body", "POST", storagePath, admin, edit(goodFS, "path", "/"+strings.Repeat("a", 2<<20)), nil, 413, "body"},
		{"wrong content type", "POST", storagePath, admin, goodFS, map[string]string{"Content-Type": "text/plain"}, 415, "body"},
		// Storage fields.
		{"missing name", "POST", storagePath, admin, edit(goodFS, "name", nil), nil, 400, "name"},
		{"name with space", "POST", storagePath, admin, edit(goodFS, "name", "my storage"), nil, 400, "name"},
		{"unknown kind", "POST", storagePath, admin, edit(goodFS, "kind", "ftp"), nil, 400, "kind"},
		{"missing kind", "POST", storagePath, admin, edit(goodFS, "kind", nil), nil, 400, "kind"},
		{"relative path", "POST", storagePath, admin, edit(goodFS, "path", "backups/here"), nil, 400, "path"},
		{"missing path", "POST", storagePath, admin, edit(goodFS, "path", nil), nil, 400, "path"},
		{"unclean path", "POST", storagePath, admin, edit(goodFS, "path", "/tmp/../etc"), nil, 400, "path"},
		{"bucket on filesystem", "POST", storagePath, admin, edit(goodFS, "bucket", "b"), nil, 400, "bucket"},
		{"missing bucket", "POST", storagePath, admin, edit(goodS3, "bucket", nil), nil, 400, "bucket"},
		{"invalid bucket", "POST", storagePath, admin, edit(goodS3, "bucket", "Bad_Bucket"), nil, 400, "bucket"},
		{"secret without key id", "POST", storagePath, admin, edit(goodS3, "secret_access_key", "s3cr3t"), nil, 400, "access_key_id"},
		{"key id without secret", "POST", storagePath, admin, edit(goodS3, "access_key_id", "AKIA"), nil, 400, "secret_access_key"},
		{"endpoint not http", "POST", storagePath, admin, edit(goodS3, "endpoint", "ftp://example"), nil, 400, "endpoint"},
		{"unknown cold class", "POST", storagePath, admin, edit(goodS3, "cold_storage_class", "FROZEN"), nil, 400, "cold_storage_class"},
		{"probe fails on unwritable path", "POST", storagePath, admin, edit(goodFS, "path", "/proc/haven-cannot-write"), nil, 422, "path"},
		{"probe fails on unreachable s3", "POST", storagePath, admin, goodS3, nil, 422, "bucket"},
		{"kind change", "PUT", storagePath + "/" + stg.ID, admin, edit(goodS3, "name", "existing"), nil, 422, "kind"},
		// Policy fields.
		{"bad timezone", "POST", policyPath, admin, edit(goodPolicy, "timezone", "Mars/Olympus_Mons"), nil, 400, "timezone"},
		{"missing timezone", "POST", policyPath, admin, edit(goodPolicy, "timezone", nil), nil, 400, "timezone"},
		{"hour 25", "POST", policyPath, admin, edit(goodPolicy, "full.at", "25:00"), nil, 400, "full.at"},
		{"time not HH:MM", "POST", policyPath, admin, edit(goodPolicy, "incremental.at", "7:5"), nil, 400, "incremental.at"},
		{"unknown weekday", "POST", policyPath, admin, edit(goodPolicy, "full.days_of_week", []string{"funday"}), nil, 400, "full.days_of_week[0]"},
		{"weekday and day of month", "POST", policyPath, admin, edit(goodPolicy, "full.day_of_month", 3), nil, 400, "full.day_of_month"},
		{"day of month 32", "POST", policyPath, admin, edit(edit(goodPolicy, "full.days_of_week", nil), "full.day_of_month", 32), nil, 400, "full.day_of_month"},
		{"every_hours 30", "POST", policyPath, admin, edit(edit(edit(goodPolicy, "incremental.days_of_week", nil), "incremental.at", nil), "incremental.every_hours", 30), nil, 400, "incremental.every_hours"},
		{"negative retention", "POST", policyPath, admin, edit(goodPolicy, "retention.daily_days", -1), nil, 400, "retention.daily_days"},
		{"retention keeps nothing", "POST", policyPath, admin, edit(goodPolicy, "retention", map[string]int{}), nil, 400, "retention.daily_days"},
		{"retention wrong type", "POST", policyPath, admin, edit(goodPolicy, "retention.weekly_weeks", "ten"), nil, 400, "retention.weekly_weeks"},
		{"negative bandwidth", "POST", policyPath, admin, edit(goodPolicy, "bandwidth_mbps", -5), nil, 400, "bandwidth_mbps"},
		{"window too long", "POST", policyPath, admin, edit(goodPolicy, "window_hours", 500), nil, 400, "window_hours"},
		{"cold before warm ends", "POST", policyPath, admin, edit(goodPolicy, "tiering", map[string]int{"warm_days": 90, "cold_after_days": 30}), nil, 400, "tiering.cold_after_days"},
		{"log interval without log retention", "POST", policyPath, admin, edit(goodPolicy, "log_backup_interval_minutes", 15), nil, 400, "retention.log_days"},
		// Auth.
		{"missing token", "GET", storagePath, "", "", nil, 401, "Authorization"},
		{"garbage token", "GET", storagePath, "not-a-token", "", nil, 401, "Authorization"},
		{"revoked token", "GET", storagePath, revoked.Secret, "", nil, 401, "Authorization"},
		{"read_only writes a storage", "POST", storagePath, readOnly.Secret, goodFS, nil, 403, ""},
		{"read_only writes a policy", "PUT", policyPath + "/" + pol.ID, readOnly.Secret, goodPolicy, nil, 403, ""},
		{"read_only deletes", "DELETE", storagePath + "/" + stg.ID, readOnly.Secret, "", nil, 403, ""},
		{"operator creates a token", "POST", "/v1/tokens", operator.Secret, `{"name":"x","role":"admin"}`, nil, 403, ""},
		{"token with unknown role", "POST", "/v1/tokens", admin, `{"name":"x","role":"root"}`, nil, 400, "role"},
		// Concurrency and lookup.
		{"stale version in If-Match", "PUT", storagePath + "/" + stg.ID, admin, edit(goodFS, "name", "existing"), map[string]string{"If-Match": `"1"`}, 409, "version"},
		{"stale version in body", "PUT", storagePath + "/" + stg.ID, admin, edit(edit(goodFS, "name", "existing"), "version", 1), nil, 409, "version"},
		{"stale version on delete", "DELETE", storagePath + "/" + stg.ID, admin, "", map[string]string{"If-Match": "1"}, 409, "version"},
		{"bad If-Match", "PUT", storagePath + "/" + stg.ID, admin, edit(goodFS, "name", "existing"), map[string]string{"If-Match": "abc"}, 400, "If-Match"},
		{"duplicate name", "POST", policyPath, admin, goodPolicy, nil, 409, "name"},
		{"bad limit", "GET", storagePath + "?limit=0", admin, "", nil, 400, "limit"},
		{"bad page token", "GET", storagePath + "?page_token=!!!", admin, "", nil, 400, "page_token"},
		{"malformed query", "GET", storagePath + "?page_token=%%%", admin, "", nil, 400, "query"},
		{"missing object", "GET", storagePath + "/nope", admin, "", nil, 404, ""},
		{"missing object by uuid", "DELETE", policyPath + "/00000000-0000-0000-0000-000000000000", admin, "", nil, 404, ""},
		{"method not allowed", "PATCH", storagePath + "/" + stg.ID, admin, goodFS, nil, 405, ""},
		{"revoke unknown token", "DELETE", "/v1/tokens/not-a-uuid", admin, "", nil, 404, ""},
		// Text the database cannot hold (NUL, invalid UTF-8), wherever it
		// comes in: path ids, page tokens, query filters, JSON strings.
		{"NUL in a path id", "GET", storagePath + "/a%00b", admin, "", nil, 400, "id"},
		{"invalid UTF-8 in a path id", "GET", storagePath + "/%ff", admin, "", nil, 400, "id"},
		{"NUL in a policy id on delete", "DELETE", policyPath + "/%00", admin, "", nil, 400, "id"},
		{"NUL in a job id", "GET", "/v1/jobs/%00", admin, "", nil, 400, "id"},
		{"invalid UTF-8 in a point id", "GET", "/v1/points/%c3%28", admin, "", nil, 400, "id"},
		{"NUL in a backup-now asset id", "POST", "/v1/assets/%00/backup", admin, "", nil, 400, "id"},
		{"NUL in a verify storage id", "POST", storagePath + "/%00/verify", admin, "", nil, 400, "id"},
		{"NUL in a token id", "DELETE", "/v1/tokens/%00", admin, "", nil, 400, "id"},
		{"NUL in a vCenter id", "GET", "/v1/vcenters/%00/vms", admin, "", nil, 400, "id"},
		{"NUL in a page token", "GET", storagePath + "?page_token=" + base64.RawURLEncoding.EncodeToString([]byte("a\x00")), admin, "", nil, 400, "page_token"},
		{"invalid UTF-8 in a page token", "GET", policyPath + "?page_token=" + base64.RawURLEncoding.EncodeToString([]byte("\xff")), admin, "", nil, 400, "page_token"},
		{"NUL in a raw page token", "GET", storagePath + "?page_token=%00", admin, "", nil, 400, "page_token"},
		{"NUL in a job filter", "GET", "/v1/jobs?state=%00", admin, "", nil, 400, "state"},
		{"invalid UTF-8 in a job filter", "GET", "/v1/jobs?kind=%fe", admin, "", nil, 400, "kind"},
		{"NUL in a point filter", "GET", "/v1/points?asset_id=x%00", admin, "", nil, 400, "asset_id"},
		{"invalid UTF-8 in a point filter", "GET", "/v1/points?asset_id=%ff", admin, "", nil, 400, "asset_id"},
		{"invalid UTF-8 in a query name", "GET", "/v1/jobs?%ff=1", admin, "", nil, 400, "query"},
		{"NUL in an agent's instance", "GET", "/v1/agent/work?wait=0s&instance=%00", agentToken, "", nil, 400, "instance"},
		{"invalid UTF-8 in an idempotency key", "POST", policyPath, admin, validPolicyJSON("keyed"), map[string]string{"Idempotency-Key": "k\xff"}, 400, "Idempotency-Key"},
		{"NUL in a JSON name", "POST", "/v1/tokens", admin, `{"name":"x\u0000y","role":"admin"}`, nil, 400, "name"},
		{"invalid UTF-8 in a JSON name", "POST", "/v1/tokens", admin, "{\"name\":\"x\xffy\",\"role\":\"admin\"}", nil, 400, "name"},
		{"NUL in a nested JSON string", "POST", policyPath, admin, edit(goodPolicy, "full.at", "01:00\x00"), nil, 400, "full.at"},
		{"invalid UTF-8 in a JSON array", "POST", "/v1/restores", admin, "{\"point_id\":\"x\",\"paths\":[\"/a\",\"/b\xfe\"]}", nil, 400, "paths[1]"},
		{"NUL in a JSON key", "POST", storagePath, admin, `{"na\u0000me":"x"}`, nil, 400, `na\u0000me`},
		{"NUL in an agent warning", "POST", agentJobPath + "/progress", agentToken, `{"progress":{},"warnings":["ok","bad\u0000"]}`, nil, 400, "warnings[1]"},
		// Versions and agent reports that cannot be.
		{"version on create", "POST", policyPath, admin, edit(validPolicyJSON("fresh"), "version", -1), nil, 400, "version"},
		{"version 0 on update", "PUT", storagePath + "/" + stg.ID, admin, edit(edit(goodFS, "name", "existing"), "version", 0), nil, 400, "version"},
		{"negative agent progress", "POST", agentJobPath + "/progress", agentToken, `{"progress":{"files_done":-1}}`, nil, 400, "progress.files_done"},
		{"negative agent bytes", "POST", agentJobPath + "/progress", agentToken, `{"progress":{"bytes_done":-5}}`, nil, 400, "progress.bytes_done"},
		{"negative final progress", "POST", agentJobPath + "/complete", agentToken, `{"root":"` + unknownChunk + `","progress":{"bytes_total":-1}}`, nil, 400, "progress.bytes_total"},
		{"negative plan bytes", "POST", agentJobPath + "/complete", agentToken, `{"plan":{"point_id":"","items":[],"writes":0,"overwrites":0,"renames":0,"skips":0,"refusals":0,"bytes":-1},"progress":{}}`, nil, 400, "plan.bytes"},
		{"unknown plan action", "POST", agentJobPath + "/complete", agentToken, `{"plan":{"point_id":"","items":[{"path":"/a","type":"file","action":"explode","bytes":0}],"writes":1,"overwrites":0,"renames":0,"skips":0,"refusals":0,"bytes":0},"progress":{}}`, nil, 400, "plan.items[0].action"},
		// A job's agent loads only chunks of the point its job reads; an
		// unknown chunk is not one of them.
		{"agent loads an unknown chunk", "POST", agentJobPath + "/load", agentToken, `{"ids":["` + unknownChunk + `"]}`, nil, 403, "ids[0]"},
		{"agent loads a malformed chunk id", "POST", agentJobPath + "/load", agentToken, `{"ids":["zz"]}`, nil, 400, "ids[0]"},
	}
	if len(cases) < 30 {
		t.Fatalf("the table must hold at least 30 bad requests, has %d", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, e := rawCall(t, srv, c.method, c.path, c.token, c.body, c.header)
			if status != c.status {
				t.Fatalf("status %d, want %d (error %+v)", status, c.status, e)
			}
			if e.Field != c.field {
				t.Errorf("field %q, want %q (message %q)", e.Field, c.field, e.Message)
			}
			if e.Code == "" || e.Message == "" {
				t.Errorf("error lacks code or message: %+v", e)
			}
		})
	}

	// Nothing above may have changed what is stored.
	job, err := srv.Client.GetJob(ctx, agentJob)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != api.JobRunning || job.Progress.FilesDone < 0 || job.Progress.BytesDone < 0 || job.Progress.BytesTotal < 0 {
		t.Fatalf("rejected agent reports changed the job: %+v", job)
	}
	got, err := srv.Client.Storages().Get(ctx, stg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Kind != "filesystem" || got.Path != fsDir {
		t.Fatalf("stored storage changed by rejected requests: %+v", got)
	}
	list, err := srv.Client.Storages().ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("rejected creates left %d storages, want 2", len(list))
	}
}

// agentWithJob activates an agent for a new file server and has it take a
// backup job, as the agent would, so agent calls on a running job can be
// sent malformed. It returns the agent's token and the job id.
func agentWithJob(t *testing.T, srv *servertest.Server, storageID, policyID string) (token, jobID string) {
	t.Helper()
	ctx := context.Background()
	fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "remote", Hostname: "remote.example", OS: "linux", Location: "agent"}})
	if err != nil {
		t.Fatal(err)
	}
	var act api.Activation
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/agents/activate", nil,
		api.ActivateRequest{ActivationToken: fsrv.ActivationToken, Hostname: "remote.example"}, &act); err != nil {
		t.Fatal(err)
	}
	agentClient := srv.NewClient(t, act.Token)
	set, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "remote-docs", FileServerID: fsrv.ID,
		IncludePaths: []string{"/srv/docs"}, PolicyID: policyID, StorageID: storageID}})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var work api.AgentWork
		if err := agentClient.Do(ctx, http.MethodGet, "/v1/agent/work", url.Values{"wait": {"5s"}}, nil, &work); err != nil {
			t.Fatal(err)
		}
		if work.JobID != "" {
			if work.JobID != queued.ID {
				t.Fatalf("the agent got job %s, want %s", work.JobID, queued.ID)
			}
			return act.Token, work.JobID
		}
	}
	t.Fatalf("the agent got no work for job %s within a minute", queued.ID)
	return "", ""
}

// TestEveryRouteRefusesTextTheDatabaseCannotHold holds every route the
// server serves, not only those listed above, to the boundary check: a
// path parameter, a query parameter or a JSON string with NUL or invalid
// UTF-8 is a 400 naming it (a body only where the route reads one), never
// a 500 from the database.
func TestEveryRouteRefusesTextTheDatabaseCannotHold(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "existing", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	var pol api.Policy
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON("gold")), &pol); err != nil {
		t.Fatal(err)
	}
	agentToken, _ := agentWithJob(t, srv, stg.ID, pol.ID)
	wildcard := regexp.MustCompile(`\{([a-z_]+)\}`)
	checked := 0
	for _, pattern := range srv.Server.Routes() {
		method, path, _ := strings.Cut(pattern, " ")
		if !strings.HasPrefix(path, "/v1/") || path == "/v1/openapi.json" || path == "/v1/version" {
			continue
		}
		token := srv.AdminToken
		if strings.HasPrefix(path, "/v1/agent/") {
			token = agentToken
		}
		// field is what a 400 must name; a body is only read by routes
		// that take one, so a body probe may also end otherwise, but never
		// in a 500.
		type probe struct{ path, body, field string }
		var probes []probe
		if m := wildcard.FindStringSubmatch(path); m != nil {
			for _, bad := range []string{"%00", "x%ffy"} {
				probes = append(probes, probe{wildcard.ReplaceAllString(path, bad), "", m[1]})
			}
		}
		real := wildcard.ReplaceAllString(path, "00000000-0000-0000-0000-000000000000")
		probes = append(probes, probe{real + "?filter=a%00b", "", "filter"}, probe{real + "?filter=%fe", "", "filter"})
		if method == http.MethodPost || method == http.MethodPut {
			probes = append(probes, probe{real, `{"name":"a\u0000b"}`, "name"}, probe{real, "{\"name\":\"a\xffb\"}", "name"})
		}
		for _, p := range probes {
			status, e := rawCall(t, srv, method, p.path, token, p.body, nil)
			if p.body != "" && status != http.StatusBadRequest && status < 500 {
				checked++
				continue
			}
			if status != http.StatusBadRequest || e.Field != p.field {
				t.Errorf("%s %s %s: status %d field %q, want 400 naming %q (%s)", method, p.path, p.body, status, e.Field, p.field, e.Message)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d probes: the route table was not walked", checked)
	}
}
