package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestS3StorageCredentials runs the storage probe against an S3 that checks
// signatures, and follows the secret everywhere it could leak: answers,
// logs, error messages and the database row.
func TestS3StorageCredentials(t *testing.T) {
	moto := testparts.MotoWithAuth(t)
	srv := servertest.Start(t)
	ctx := context.Background()
	spec := api.StorageSpec{
		Name: "cloud", Kind: "s3", Bucket: moto.Bucket, Prefix: "haven/", Endpoint: moto.Endpoint, ForcePathStyle: true,
		AccessKeyID: moto.Allowed.AccessKeyID, SecretAccessKey: moto.Allowed.SecretAccessKey, ColdStorageClass: "GLACIER",
	}
	secret := spec.SecretAccessKey

	// Wrong credentials: the probe fails, the answer says why, and nothing is stored.
	bad := spec
	bad.SecretAccessKey = "wrong-" + secret
	_, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: bad})
	e, ok := err.(*api.Error)
	if !ok || e.Status != http.StatusUnprocessableEntity || e.Field != "bucket" {
		t.Fatalf("wrong secret: %v, want 422 on bucket", err)
	}
	if strings.Contains(e.Message, bad.SecretAccessKey) {
		t.Fatal("the error message contains the secret")
	}
	denied := spec
	denied.AccessKeyID, denied.SecretAccessKey = moto.Denied.AccessKeyID, moto.Denied.SecretAccessKey
	if _, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: denied}); err == nil {
		t.Fatal("a key without S3 permissions passed the probe")
	}
	if list, _ := srv.Client.Storages().ListAll(ctx); len(list) != 0 {
		t.Fatalf("failed probes stored %d storages", len(list))
	}

	created, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if !created.HasSecret || created.SecretAccessKey != "" || created.Prefix != "haven" || created.Region != api.DefaultS3Region {
		t.Fatalf("created: %+v", created)
	}

	// An update that leaves the secret out keeps the stored one: the probe
	// still authenticates.
	keep := spec
	keep.SecretAccessKey = ""
	keep.ColdStorageClass = "DEEP_ARCHIVE"
	updated, err := srv.Client.Storages().Update(ctx, created.ID, created.Version, api.StorageRequest{StorageSpec: keep})
	if err != nil {
		t.Fatalf("update keeping the secret: %v", err)
	}
	if !updated.HasSecret || updated.ColdStorageClass != "DEEP_ARCHIVE" {
		t.Fatalf("updated: %+v", updated)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/storages/"+created.ID, nil)
	req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "secret_access_key") {
		t.Fatalf("GET returns the secret: %s", raw)
	}
	if strings.Contains(srv.Logs(), secret) || strings.Contains(srv.Logs(), srv.AdminToken) {
		t.Fatal("the server log contains a secret")
	}

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var specText string
	var sealed []byte
	if err := conn.QueryRow(ctx, `SELECT spec::text, sealed_secret FROM storages WHERE id = $1`, created.ID).Scan(&specText, &sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(specText, secret) || strings.Contains(string(sealed), secret) || len(sealed) == 0 {
		t.Fatal("the database holds the secret in clear text")
	}
}
