// Package s3store is a store.Store on Amazon S3 or any S3-compatible service
// (MinIO, Ceph RGW, Wasabi, ...).
//
// The object "packs/3fa9..." is the key <Prefix>packs/3fa9... in the bucket.
// Small objects are uploaded with one PutObject; larger ones (packs) with a
// multipart upload whose parts go up in parallel. Storage classes map to tiers:
// store.ClassWarm is S3 Standard (no class is sent), store.ClassCold is
// Config.ColdStorageClass. The Store implements store.ClassChanger by copying
// an object onto itself with the new class.
//
// The S3 client does not retry: retries belong to store.WithRetry, so that one
// policy governs every backend and a Probe reports a failure at once instead of
// after the SDK's own backoff.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

const (
	// DefaultPartSize is the default size of multipart upload parts, and the
	// largest object sent with a single PutObject. Packs (tens of MiB) go up in
	// a few parts that can travel in parallel.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest allowed part (except the last one).
	MinPartSize = 5 << 20
	// maxParts is S3's limit on parts per upload; beyond DefaultPartSize *
	// maxParts (160 GiB) parts grow.
	maxParts = 10000
	// partConcurrency bounds the parts of one Put in flight, and so the
	// memory a Put from a plain reader holds: partConcurrency+1 part buffers.
	partConcurrency = 4
)

// Config says where a Store keeps its objects and how it reaches them.
type Config struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix is prepended to every key, so that several repositories can share
	// a bucket. Leading and trailing slashes are ignored.
	Prefix string
	// Region is the bucket's region. If empty, it comes from the environment
	// (AWS_REGION, shared config), or is "us-east-1" when Endpoint is set,
	// which S3-compatible services generally accept.
	Region string
	// Endpoint is the URL of an S3-compatible service ("https://minio:9000").
	// Empty means AWS.
	Endpoint string
	// ForcePathStyle addresses buckets as <endpoint>/<bucket> instead of
	// <bucket>.<endpoint>, as many S3-compatible services require.
	ForcePathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials. If AccessKeyID
	// is empty, the ambient credentials are used (environment, shared files,
	// web identity, ECS or EC2 instance roles).
	AccessKeyID     string
	SecretAccessKey string
	// ColdStorageClass is the S3 storage class of store.ClassCold, such as
	// GLACIER or DEEP_ARCHIVE. If empty, cold objects are refused rather than
	// silently stored in a class with different costs.
	ColdStorageClass string
	// PartSize is the multipart part size; 0 means DefaultPartSize. Objects up
	// to PartSize go up with a single PutObject.
	PartSize int64
}

// String describes the configuration without the secret key, so that logging
// a Config (or an error that includes one) cannot leak it.
func (c Config) String() string {
	secret := ""
	if c.SecretAccessKey != "" {
		secret = "REDACTED"
	}
	return fmt.Sprintf("s3store.Config{Bucket:%q Prefix:%q Region:%q Endpoint:%q ForcePathStyle:%t AccessKeyID:%q SecretAccessKey:%q ColdStorageClass:%q PartSize:%d}",
		c.Bucket, c.Prefix, c.Region, c.Endpoint, c.ForcePathStyle, c.AccessKeyID, secret, c.ColdStorageClass, c.PartSize)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Store is an S3 store.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ends with "/"
	cold     types.StorageClass
	partSize int64
	bufs     freelist.List[*[]byte] // of partSize, for uploads from plain readers
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.ClassChanger = (*Store)(nil)
)

// New returns a Store for cfg. It checks the configuration but does not contact
// the service: use store.Probe for that.
func New(ctx context.Context, cfg Config) (*Store, error) {
	invalid := func(format string, args ...any) error {
		return store.Permanent(fmt.Errorf("s3 store: invalid configuration: "+format, args...))
	}
	if cfg.Bucket == "" {
		return nil, invalid("no bucket")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := store.ValidateName(prefix); err != nil {
			return nil, invalid("prefix: %v", err)
		}
		prefix += "/"
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, invalid("an access key ID needs a secret access key and vice versa")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, invalid("endpoint %q is not an http or https URL", cfg.Endpoint)
		}
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize {
		return nil, invalid("part size %d is below S3's minimum of %d", partSize, MinPartSize)
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	region := cfg.Region
	if region == "" && cfg.Endpoint != "" {
		region = "us-east-1"
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, store.Permanent(fmt.Errorf("s3 store: loading the AWS configuration: %w", err))
	}
	if awsCfg.Region == "" {
		return nil, invalid("no region (set one, or AWS_REGION)")
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// The SDK's default flexible checksums (CRC trailers) are not
		// understood by many S3-compatible services. Integrity does not
		// depend on them: the SigV4 signature covers a SHA-256 of each
		// request body, and every object is authenticated by AES-GCM.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &Store{
		client:   client,
		bucket:   cfg.Bucket,
		prefix:   prefix,
		cold:     types.StorageClass(cfg.ColdStorageClass),
		partSize: partSize,
	}
	s.bufs.New = func() *[]byte {
		b := make([]byte, s.partSize)
		return &b
	}
	s.bufs.Max = 16
	return s, nil
}

func (s *Store) key(name string) string { return s.prefix + name }

// storageClass returns the S3 class to request for class; "" means the
// bucket's default, Standard.
func (s *Store) storageClass(name string, class store.Class) (types.StorageClass, error) {
	switch class {
	case store.ClassWarm:
		return "", nil
	case store.ClassCold:
		if s.cold == "" {
			return "", store.Permanent(fmt.Errorf("%s: no cold storage class is configured for this storage", s.opMsg("put", name)))
		}
		return s.cold, nil
	default:
		return "", store.Permanent(fmt.Errorf("%s: unknown storage class %v", s.opMsg("put", name), class))
	}
}

// archiveClasses are the S3 classes whose objects must be restored before they
// can be read; an object in one of them (or in the configured cold class) is
// reported as store.ClassCold.
var archiveClasses = map[string]bool{"GLACIER": true, "DEEP_ARCHIVE": true, "GLACIER_IR": true}

func (s *Store) classOf(sc string) store.Class {
	if sc != "" && (sc == string(s.cold) || archiveClasses[sc]) {
		return store.ClassCold
	}
	return store.ClassWarm
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64, opts store.PutOptions) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if size < 0 {
		return store.Permanent(fmt.Errorf("%s: negative size %d", s.opMsg("put", name), size))
	}
	sc, err := s.storageClass(name, opts.Class)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.opMsg("put", name), err)
	}
	src, err := s.newSource(name, r, size)
	if err != nil {
		return err
	}
	if size > s.partSize {
		return s.putMultipart(ctx, name, src, size, sc)
	}
	body, release, err := src.part(0, size)
	if err != nil {
		return err
	}
	defer release()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.key(name)),
		Body:          body,
		ContentLength: aws.Int64(size),
		StorageClass:  sc,
	})
	if err != nil {
		return s.putErr(name, err, body)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, store.Permanent(fmt.Errorf("%s: %w: negative offset %d", s.opMsg("get", name), store.ErrInvalidRange, offset))
	}
	if length == 0 {
		// No HTTP range can ask for nothing; check the object instead.
		return s.emptyRead(ctx, name, offset)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))}
	if offset > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if errorCode(err) == "InvalidRange" {
			// S3 refuses ranges that start at the end of an object (or
			// anywhere in an empty one), which the contract allows.
			return s.emptyRead(ctx, name, offset)
		}
		return nil, s.classify("get", name, err)
	}
	return &bodyReader{body: out.Body, msg: s.opMsg("read", name)}, nil
}

// emptyRead returns an empty reader if name exists and offset is within it.
func (s *Store) emptyRead(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	info, err := s.stat(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, store.Permanent(fmt.Errorf("%s: %w: offset %d is beyond the end of the %d-byte object", s.opMsg("get", name), store.ErrInvalidRange, offset, info.Size))
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// bodyReader classifies errors while reading a GetObject body: anything but
// the caller's own cancellation is a broken transfer, worth resuming.
type bodyReader struct {
	body io.ReadCloser
	msg  string
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", b.msg, err)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = store.Transient(err)
		}
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.body.Close() }

// Stat implements store.Store. S3 answers a HEAD request for an object in a
// missing bucket with a bare 404, so Stat reports ErrNotFound then; the other
// operations name the missing bucket.
func (s *Store) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := store.ValidateName(name); err != nil {
		return store.ObjectInfo{}, err
	}
	return s.stat(ctx, "stat", name)
}

func (s *Store) stat(ctx context.Context, op, name string) (store.ObjectInfo, error) {
	out, err := s.head(ctx, op, name)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return store.ObjectInfo{
		Name:    name,
		Size:    aws.ToInt64(out.ContentLength),
		Class:   s.classOf(string(out.StorageClass)),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

func (s *Store) head(ctx context.Context, op, name string) (*s3.HeadObjectOutput, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		return nil, s.classify(op, name, err)
	}
	return out, nil
}

// List implements store.Store. Keys under the prefix that are not valid names
// (written by something else) are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := store.ValidatePrefix(prefix); err != nil {
		return err
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.classify("list", prefix, err)
		}
		for _, obj := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), s.prefix)
			if !ok || store.ValidateName(name) != nil {
				continue
			}
			err := fn(store.ObjectInfo{
				Name:    name,
				Size:    aws.ToInt64(obj.Size),
				Class:   s.classOf(string(obj.StorageClass)),
				ModTime: aws.ToTime(obj.LastModified),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		err = s.classify("delete", name, err)
		if errors.Is(err, store.ErrNotFound) {
			// S3 itself answers 204 for a missing key; some compatible
			// services answer 404.
			return nil
		}
		return err
	}
	return nil
}

// SetClass implements store.ClassChanger by copying the object onto itself
// with the new class, which S3 allows for objects up to 5 GiB (packs are far
// smaller). An object in an archive class must be restored first; S3 refuses
// the copy otherwise, and SetClass reports that as a permanent error.
func (s *Store) SetClass(ctx context.Context, name string, class store.Class) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	want, err := s.storageClass(name, class)
	if err != nil {
		return err
	}
	if want == "" {
		want = types.StorageClassStandard
	}
	head, err := s.head(ctx, "set class of", name)
	if err != nil {
		return err
	}
	have := head.StorageClass
	if have == "" {
		have = types.StorageClassStandard
	}
	if have == want {
		// S3 rejects a copy onto itself that changes nothing.
		return nil
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &s.bucket,
		Key:    aws.String(s.key(name)),
		// Bucket names and validated keys contain nothing that needs
		// URL-encoding.
		CopySource:        aws.String(s.bucket + "/" + s.key(name)),
		StorageClass:      want,
		MetadataDirective: types.MetadataDirectiveCopy,
	})
	if err != nil {
		return s.classify("set class of", name, err)
	}
	return nil
}
