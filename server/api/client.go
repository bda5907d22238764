package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// Endpoint is the server's base URL, e.g. http://127.0.0.1:8470.
	Endpoint string
	// Token is the bearer token. It is sent in a header and never logged.
	Token string
	// CAFile is a PEM bundle that replaces the system roots.
	CAFile             string
	InsecureSkipVerify bool
	// MaxRetries bounds retries of 429, 5xx and connection errors. Negative means 0.
	MaxRetries int
	UserAgent  string
}

// DefaultEndpoint is where a server listens by default.
const DefaultEndpoint = "http://127.0.0.1:8470"

// Client is a typed client of the Haven API. It retries 429, 5xx and
// connection errors with exponential backoff and honours Retry-After.
type Client struct {
	base      *url.URL
	token     string
	userAgent string
	http      *retryablehttp.Client
}

// NewClient validates the options and builds a client.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	base, err := url.Parse(strings.TrimRight(o.Endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an http or https URL", o.Endpoint)
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in by the user
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", o.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient.Transport.(*http.Transport).TLSClientConfig = tlsConfig
	rc.HTTPClient.Timeout = 5 * time.Minute
	rc.RetryMax = max(o.MaxRetries, 0)
	rc.RetryWaitMin = 200 * time.Millisecond
	rc.RetryWaitMax = 10 * time.Second
	rc.Logger = nil
	// The default policy gives up with a generic error after the last retry;
	// passing the final response through lets us surface the server's message.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	ua := o.UserAgent
	if ua == "" {
		ua = "haven-client"
	}
	return &Client{base: base, token: o.Token, userAgent: ua, http: rc}, nil
}

// Endpoint returns the server's base URL.
func (c *Client) Endpoint() string { return c.base.String() }

// requestOptions are per-call extras.
type requestOptions struct {
	ifMatch        int64
	idempotencyKey string
	// status, if set, receives a 2xx answer's status code.
	status *int
}

// Do sends one request. in (if not nil) is sent as JSON; a 2xx body is
// decoded into out (if not nil). A non-2xx answer becomes *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.do(ctx, method, path, query, in, out, requestOptions{})
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, ro requestOptions) error {
	u := *c.base
	// Callers escape path segments (url.PathEscape), so an id holding a
	// slash, such as a protected VM's stored name, stays one segment.
	u.RawPath = strings.TrimRight(u.EscapedPath(), "/") + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	u.Path = unescaped
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ro.ifMatch > 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(ro.ifMatch, 10)))
	}
	if ro.idempotencyKey == "" && method == http.MethodPost {
		// A POST may make something (an object, a job). Its retries carry
		// the same key, so the server answers a retry whose first try got
		// through (only its answer was lost) with what that try made.
		ro.idempotencyKey = newIdempotencyKey()
	}
	if ro.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", ro.idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Message != "" {
			eb.Error.Status = resp.StatusCode
			return eb.Error
		}
		return &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode),
			Message: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))}
	}
	if ro.status != nil {
		*ro.status = resp.StatusCode
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

// newIdempotencyKey names one logical call, kept across its retries.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func pageQuery(pageToken string, limit int) url.Values {
	q := url.Values{}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// Collection gives typed CRUD calls over one REST collection.
type Collection[Req any, Obj any] struct {
	c    *Client
	path string
}

func (k Collection[Req, Obj]) Create(ctx context.Context, req Req) (*Obj, error) {
	var out Obj
	err := k.c.do(ctx, http.MethodPost, k.path, nil, req, &out, requestOptions{})
	return &out, err
}

func (k Collection[Req, Obj]) Get(ctx context.Context, idOrName string) (*Obj, error) {
	var out Obj
	err := k.c.do(ctx, http.MethodGet, k.path+"/"+url.PathEscape(idOrName), nil, nil, &out, requestOptions{})
	return &out, err
}

// Update replaces the object. A positive version is sent as If-Match.
func (k Collection[Req, Obj]) Update(ctx context.Context, id string, version int64, req Req) (*Obj, error) {
	var out Obj
	err := k.c.do(ctx, http.MethodPut, k.path+"/"+url.PathEscape(id), nil, req, &out, requestOptions{ifMatch: version})
	return &out, err
}

func (k Collection[Req, Obj]) Delete(ctx context.Context, id string) error {
	return k.c.do(ctx, http.MethodDelete, k.path+"/"+url.PathEscape(id), nil, nil, nil, requestOptions{})
}

func (k Collection[Req, Obj]) List(ctx context.Context, pageToken string, limit int) (*List[Obj], error) {
	var out List[Obj]
	err := k.c.do(ctx, http.MethodGet, k.path, pageQuery(pageToken, limit), nil, &out, requestOptions{})
	return &out, err
}

// ListAll follows next_page_token to the end.
func (k Collection[Req, Obj]) ListAll(ctx context.Context) ([]Obj, error) {
	var all []Obj
	token := ""
	for {
		page, err := k.List(ctx, token, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageToken == "" {
			return all, nil
		}
		token = page.NextPageToken
	}
}

// Storages is the /v1/storages collection. Get accepts an id or a name.
func (c *Client) Storages() Collection[StorageRequest, Storage] {
	return Collection[StorageRequest, Storage]{c: c, path: "/v1/storages"}
}

// DeleteStorage deletes a storage. With force_destroy set on the storage,
// a destroy that expired recovery points says what it removed; otherwise
// the answer is nil.
func (c *Client) DeleteStorage(ctx context.Context, id string) (*StorageDestroyed, error) {
	var out StorageDestroyed
	if err := c.do(ctx, http.MethodDelete, "/v1/storages/"+url.PathEscape(id), nil, nil, &out, requestOptions{}); err != nil {
		return nil, err
	}
	if out.Message == "" {
		return nil, nil
	}
	return &out, nil
}

// ImportStorage adds a storage whose location holds a Haven repository
// to the catalog and queues the job that indexes its packs and adds its
// recovery points (see JobImport and the ImportResult keys).
func (c *Client) ImportStorage(ctx context.Context, req StorageImportRequest) (*Job, error) {
	var out Job
	if err := c.do(ctx, http.MethodPost, "/v1/storages/import", nil, req, &out, requestOptions{}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Policies is the /v1/backup-policies collection. Get accepts an id or a name.
func (c *Client) Policies() Collection[PolicyRequest, Policy] {
	return Collection[PolicyRequest, Policy]{c: c, path: "/v1/backup-policies"}
}

// CreateToken creates an API token; the answer holds the secret, once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*CreatedToken, error) {
	var out CreatedToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, req, &out, requestOptions{})
	return &out, err
}

// ListTokens lists API tokens (never their secrets).
func (c *Client) ListTokens(ctx context.Context, pageToken string, limit int) (*List[Token], error) {
	var out List[Token]
	err := c.do(ctx, http.MethodGet, "/v1/tokens", pageQuery(pageToken, limit), nil, &out, requestOptions{})
	return &out, err
}

// ListAudit lists one page of the audit log, newest first (admin).
func (c *Client) ListAudit(ctx context.Context, f AuditFilter, pageToken string, limit int) (*List[AuditEntry], error) {
	q := pageQuery(pageToken, limit)
	for k, v := range map[string]string{"token_id": f.TokenID, "object_id": f.ObjectID, "method": f.Method} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Since != nil {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if f.Until != nil {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	var out List[AuditEntry]
	err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &out, requestOptions{})
	return &out, err
}

// RevokeToken revokes a token; its bearer is refused from then on.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, nil, requestOptions{})
}

// FileServers is the /v1/file-servers collection.
func (c *Client) FileServers() Collection[FileServerRequest, FileServer] {
	return Collection[FileServerRequest, FileServer]{c: c, path: "/v1/file-servers"}
}

// IssueActivation gets the one-time activation token for the agent of a
// file server (by id or name): the pending one while it is unused and
// unexpired, else a new one. With replace, always a new one, and the
// pending one stops working.
func (c *Client) IssueActivation(ctx context.Context, fileServerID string, replace bool) (*FileServerActivation, error) {
	var out FileServerActivation
	err := c.do(ctx, http.MethodPost, "/v1/file-servers/"+url.PathEscape(fileServerID)+"/activation", nil,
		IssueActivationRequest{Replace: replace}, &out, requestOptions{})
	return &out, err
}

// Filesets is the /v1/filesets collection.
func (c *Client) Filesets() Collection[FilesetRequest, Fileset] {
	return Collection[FilesetRequest, Fileset]{c: c, path: "/v1/filesets"}
}

// BackupNow queues an on-demand backup of an asset (full if it has no
// recovery point yet, incremental otherwise).
func (c *Client) BackupNow(ctx context.Context, assetID string) (*Job, error) {
	return c.Backup(ctx, assetID, BackupRequest{})
}

// Backup queues a backup of an asset now, of the type req asks for.
func (c *Client) Backup(ctx context.Context, assetID string, req BackupRequest) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/assets/"+url.PathEscape(assetID)+"/backup", nil, req, &out, requestOptions{})
	return &out, err
}

// Restore queues a restore.
func (c *Client) Restore(ctx context.Context, req RestoreRequest) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/restores", nil, req, &out, requestOptions{})
	return &out, err
}

// JobFilter narrows a job listing.
type JobFilter struct {
	AssetID, Kind, State string
}

// ListJobs lists jobs, newest first.
func (c *Client) ListJobs(ctx context.Context, f JobFilter, pageToken string, limit int) (*List[Job], error) {
	q := pageQuery(pageToken, limit)
	for k, v := range map[string]string{"asset_id": f.AssetID, "kind": f.Kind, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out List[Job]
	err := c.do(ctx, http.MethodGet, "/v1/jobs", q, nil, &out, requestOptions{})
	return &out, err
}

// GetJob reads one job.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil, &out, requestOptions{})
	return &out, err
}

// GetJobWaiting reads a job, letting the server wait up to wait (at most
// 30 s) for it to end first.
func (c *Client) GetJobWaiting(ctx context.Context, id string, wait time.Duration) (*Job, error) {
	var out Job
	q := url.Values{"wait": {wait.String()}}
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), q, nil, &out, requestOptions{})
	return &out, err
}

// CancelJob asks a job to stop; a queued job is canceled at once, a running
// one as soon as its worker notices.
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, struct{}{}, &out, requestOptions{})
	return &out, err
}

// WaitJob waits until a job finishes or ctx ends. Each read waits on the
// server for the job's end (GetJobWaiting), so the end is seen at once; a
// server that answers at once (one without the wait parameter) is asked
// again every every.
func (c *Client) WaitJob(ctx context.Context, id string, every time.Duration) (*Job, error) {
	const serverWait = 10 * time.Second
	for {
		asked := time.Now()
		j, err := c.GetJobWaiting(ctx, id, serverWait)
		if err != nil {
			return nil, err
		}
		if j.Finished() {
			return j, nil
		}
		if time.Since(asked) >= serverWait/2 {
			continue
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(every):
		}
	}
}

// ListPoints lists an asset's recovery points, newest first.
func (c *Client) ListPoints(ctx context.Context, assetID string, pageToken string, limit int) (*List[Point], error) {
	return c.FindPoints(ctx, PointFilter{AssetID: assetID}, pageToken, limit)
}

// FindPoints lists recovery points matching a filter, newest first.
func (c *Client) FindPoints(ctx context.Context, f PointFilter, pageToken string, limit int) (*List[Point], error) {
	q := pageQuery(pageToken, limit)
	for k, v := range map[string]string{"asset_id": f.AssetID, "kind": f.Kind, "tier": f.Tier} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.CreatedAfter != nil {
		q.Set("created_after", f.CreatedAfter.Format(time.RFC3339))
	}
	if f.CreatedBefore != nil {
		q.Set("created_before", f.CreatedBefore.Format(time.RFC3339))
	}
	var out List[Point]
	err := c.do(ctx, http.MethodGet, "/v1/points", q, nil, &out, requestOptions{})
	return &out, err
}

// Stream sends a raw body (retried like any call, so it is a byte slice)
// and returns the raw answer body of a 2xx reply, for the agent's binary
// chunk transfers. The caller closes it.
func (c *Client) Stream(ctx context.Context, method, path string, body []byte, contentType string) (io.ReadCloser, error) {
	u := *c.base
	path, u.RawQuery, _ = strings.Cut(path, "?")
	u.Path = strings.TrimRight(u.Path, "/") + path
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return nil, eb.Error
		}
		return nil, &Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)}
	}
	return resp.Body, nil
}

// WithToken returns a copy of the client that sends another bearer token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// GetPoint reads one recovery point.
func (c *Client) GetPoint(ctx context.Context, id string) (*Point, error) {
	var out Point
	err := c.do(ctx, http.MethodGet, "/v1/points/"+url.PathEscape(id), nil, nil, &out, requestOptions{})
	return &out, err
}

// SetLegalHold sets or clears a point's legal hold.
func (c *Client) SetLegalHold(ctx context.Context, id string, hold bool) (*Point, error) {
	var out Point
	err := c.do(ctx, http.MethodPut, "/v1/points/"+url.PathEscape(id)+"/legal-hold", nil, LegalHoldRequest{LegalHold: hold}, &out, requestOptions{})
	return &out, err
}

// PreviewRetention dry-runs a policy change: what it would expire and
// move if applied now. Nothing changes until the policy is updated.
func (c *Client) PreviewRetention(ctx context.Context, policyID string, spec PolicySpec) (*RetentionPreview, error) {
	var out RetentionPreview
	err := c.do(ctx, http.MethodPost, "/v1/backup-policies/"+url.PathEscape(policyID)+"/preview", nil, PolicyRequest{PolicySpec: spec}, &out, requestOptions{})
	return &out, err
}

// VCenters is the /v1/vcenters collection.
func (c *Client) VCenters() Collection[VCenterRequest, VCenter] {
	return Collection[VCenterRequest, VCenter]{c: c, path: "/v1/vcenters"}
}

// AWSTargets is the /v1/aws-targets collection.
func (c *Client) AWSTargets() Collection[AWSTargetRequest, AWSTarget] {
	return Collection[AWSTargetRequest, AWSTarget]{c: c, path: "/v1/aws-targets"}
}

// ProtectedVMs is the /v1/protected-vms collection. Get accepts an id or
// the stored name, ProtectedVMObjectName(vcenterID, instanceUUID).
func (c *Client) ProtectedVMs() Collection[ProtectedVMRequest, ProtectedVM] {
	return Collection[ProtectedVMRequest, ProtectedVM]{c: c, path: "/v1/protected-vms"}
}

// VMProtectionRules is the /v1/vm-protection-rules collection. Get accepts
// an id or a name.
func (c *Client) VMProtectionRules() Collection[VMProtectionRuleRequest, VMProtectionRule] {
	return Collection[VMProtectionRuleRequest, VMProtectionRule]{c: c, path: "/v1/vm-protection-rules"}
}

// VMs lists a vCenter's VMs matching a filter, from the server's view of
// the inventory.
func (c *Client) VMs(ctx context.Context, vcenterID string, f VMFilter) ([]VM, error) {
	var out List[VM]
	err := c.do(ctx, http.MethodGet, "/v1/vcenters/"+url.PathEscape(vcenterID)+"/vms", f.Query(), nil, &out, requestOptions{})
	return out.Items, err
}

// DatabaseServers is the /v1/database-servers collection.
func (c *Client) DatabaseServers() Collection[DatabaseServerRequest, DatabaseServer] {
	return Collection[DatabaseServerRequest, DatabaseServer]{c: c, path: "/v1/database-servers"}
}

// DatabaseSets is the /v1/database-sets collection.
func (c *Client) DatabaseSets() Collection[DatabaseSetRequest, DatabaseSet] {
	return Collection[DatabaseSetRequest, DatabaseSet]{c: c, path: "/v1/database-sets"}
}

// NASDevices is the /v1/nas-devices collection.
func (c *Client) NASDevices() Collection[NASDeviceRequest, NASDevice] {
	return Collection[NASDeviceRequest, NASDevice]{c: c, path: "/v1/nas-devices"}
}

// NASShares is the /v1/nas-shares collection.
func (c *Client) NASShares() Collection[NASShareRequest, NASShare] {
	return Collection[NASShareRequest, NASShare]{c: c, path: "/v1/nas-shares"}
}

// DRPlans is the /v1/dr-plans collection.
func (c *Client) DRPlans() Collection[DRPlanRequest, DRPlan] {
	return Collection[DRPlanRequest, DRPlan]{c: c, path: "/v1/dr-plans"}
}

// ReplicateDRPlan queues a replication of a DR plan now; a replication
// already queued or running is returned instead of a second one.
func (c *Client) ReplicateDRPlan(ctx context.Context, planID string) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/dr-plans/"+url.PathEscape(planID)+"/replicate", nil, nil, &out, requestOptions{})
	return &out, err
}

// StartDRTest starts a DR test of a plan; the run is answered at once
// (its job runs it).
func (c *Client) StartDRTest(ctx context.Context, planID string, req DRTestRequest) (*DRRun, error) {
	var out DRRun
	err := c.do(ctx, http.MethodPost, "/v1/dr-plans/"+url.PathEscape(planID)+"/test", nil, req, &out, requestOptions{})
	return &out, err
}

// StartDRFailover starts (or continues) a failover of a plan.
func (c *Client) StartDRFailover(ctx context.Context, planID string, req DRFailoverRequest) (*DRRun, error) {
	var out DRRun
	err := c.do(ctx, http.MethodPost, "/v1/dr-plans/"+url.PathEscape(planID)+"/failover", nil, req, &out, requestOptions{})
	return &out, err
}

// DRRuns lists runs, newest first; planID and kind narrow the list when
// not empty.
func (c *Client) DRRuns(ctx context.Context, planID, kind string) ([]DRRun, error) {
	q := url.Values{}
	if planID != "" {
		q.Set("plan_id", planID)
	}
	if kind != "" {
		q.Set("kind", kind)
	}
	var out List[DRRun]
	err := c.do(ctx, http.MethodGet, "/v1/dr-runs", q, nil, &out, requestOptions{})
	return out.Items, err
}

// DRRun reads one run.
func (c *Client) DRRun(ctx context.Context, id string) (*DRRun, error) {
	var out DRRun
	err := c.do(ctx, http.MethodGet, "/v1/dr-runs/"+url.PathEscape(id), nil, nil, &out, requestOptions{})
	return &out, err
}

// CleanupDRRun queues the removal of what a run created; a failover's
// needs confirm.
func (c *Client) CleanupDRRun(ctx context.Context, id string, confirm bool) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/dr-runs/"+url.PathEscape(id)+"/cleanup", nil, DRCleanupRequest{Confirm: confirm}, &out, requestOptions{})
	return &out, err
}

// FailbackDRRun queues a failback pass of a failover.
func (c *Client) FailbackDRRun(ctx context.Context, id string, req DRFailbackRequest) (*Job, error) {
	var out Job
	err := c.do(ctx, http.MethodPost, "/v1/dr-runs/"+url.PathEscape(id)+"/failback", nil, req, &out, requestOptions{})
	return &out, err
}
