// Package connect reaches the outside systems Haven's objects describe: the
// object store behind a storage (for the API's probe and for the jobs that
// read and write repositories), the vCenters VMs live in (for the API,
// which proves a registration by logging in, and for the VM jobs), and the
// AWS accounts of AWS targets (for the API, which proves a registration
// with STS and EC2 calls, and for the DR jobs). Each way a vCenter login
// or an AWS target's check fails becomes a 422 on the field to fix.
package connect

import (
	"context"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/s3store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// StoreSecretContext binds sealed storage secrets to their purpose.
const StoreSecretContext = "haven/storage/secret-access-key"

// Store opens the object store a storage spec describes.
func Store(ctx context.Context, spec api.StorageSpec, secret string) (store.Store, error) {
	switch spec.Kind {
	case api.StorageFilesystem:
		return fsstore.New(spec.Path)
	case api.StorageS3:
		return s3store.New(ctx, s3store.Config{
			Bucket: spec.Bucket, Prefix: spec.Prefix, Region: spec.Region, Endpoint: spec.Endpoint,
			ForcePathStyle: spec.ForcePathStyle, AccessKeyID: spec.AccessKeyID, SecretAccessKey: secret,
			ColdStorageClass: spec.ColdStorageClass,
		})
	}
	return nil, fmt.Errorf("unknown storage kind %q", spec.Kind)
}

// StoreSecret opens a storage's sealed secret (empty when none is stored).
func StoreSecret(master *keys.MasterKey, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	plain, err := master.Open(sealed, StoreSecretContext)
	if err != nil {
		return "", fmt.Errorf("storage secret: %w", err)
	}
	return string(plain), nil
}
