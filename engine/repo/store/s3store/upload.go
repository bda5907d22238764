package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// source hands out the data of a Put in pieces. The SDK needs seekable bodies
// (it reads each one twice: to sign it, then to send it), so a piece is either
// a window onto the caller's reader, when that can be read at offsets, or a
// buffered copy.
type source struct {
	s    *Store
	name string
	ra   io.ReaderAt // nil: read r sequentially into buffers
	base int64       // offset of the data in ra
	r    io.Reader
	size int64
}

func (s *Store) newSource(name string, r io.Reader, size int64) (*source, error) {
	src := &source{s: s, name: name, r: r, size: size}
	ra, okAt := r.(io.ReaderAt)
	seeker, okSeek := r.(io.Seeker)
	if !okAt || !okSeek {
		return src, nil
	}
	base, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return src, nil // not really seekable (a pipe): read it sequentially
	}
	end, err := seeker.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, s.sourceErr(name, err)
	}
	if _, err := seeker.Seek(base, io.SeekStart); err != nil {
		return nil, s.sourceErr(name, err)
	}
	if end-base < size {
		return nil, s.shortErr(name, end-base, size)
	}
	src.ra, src.base = ra, base
	return src, nil
}

// part returns the n bytes at offset off as an upload body, and a function to
// call once the body is no longer needed. Sequential sources must be asked for
// their parts in order.
func (src *source) part(off, n int64) (*partBody, func(), error) {
	if src.ra != nil {
		return &partBody{ReadSeeker: io.NewSectionReader(src.ra, src.base+off, n)}, func() {}, nil
	}
	var buf []byte
	release := func() {}
	if n > 1<<20 && n <= src.s.partSize {
		// Pool part-sized buffers; small objects are not worth pinning one,
		// and the larger parts of huge objects are rare.
		bp := src.s.bufs.Get()
		buf = (*bp)[:n]
		release = func() { src.s.bufs.Put(bp) }
	} else {
		buf = make([]byte, n)
	}
	got, err := io.ReadFull(src.r, buf)
	if err != nil {
		release()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil, src.s.shortErr(src.name, off+int64(got), src.size)
		}
		return nil, nil, src.s.sourceErr(src.name, err)
	}
	return &partBody{ReadSeeker: bytes.NewReader(buf)}, release, nil
}

// partBody remembers a read error of the caller's data, so that a failed
// upload can be blamed on its source rather than on S3.
type partBody struct {
	io.ReadSeeker
	err error
}

func (b *partBody) Read(p []byte) (int, error) {
	n, err := b.ReadSeeker.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// putMultipart uploads size bytes from src as a multipart upload with up to
// partConcurrency parts in flight, and aborts the upload if anything fails so
// that no invisible half-object keeps costing storage.
func (s *Store) putMultipart(ctx context.Context, name string, src *source, size int64, sc types.StorageClass) error {
	key := aws.String(s.key(name))
	partSize := max(s.partSize, (size+maxParts-1)/maxParts)
	nParts := int((size + partSize - 1) / partSize)

	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:       &s.bucket,
		Key:          key,
		StorageClass: sc,
	})
	if err != nil {
		return s.classify("put", name, err)
	}
	uploadID := created.UploadId

	partCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	parts := make([]types.CompletedPart, nParts)
	slots := make(chan struct{}, partConcurrency)
send:
	for i := range nParts {
		select {
		case slots <- struct{}{}:
		case <-partCtx.Done():
			break send
		}
		off := int64(i) * partSize
		n := min(partSize, size-off)
		body, release, err := src.part(off, n)
		if err != nil {
			<-slots
			fail(err)
			break
		}
		num := aws.Int32(int32(i + 1))
		wg.Go(func() {
			defer func() {
				release()
				<-slots
			}()
			out, err := s.client.UploadPart(partCtx, &s3.UploadPartInput{
				Bucket:        &s.bucket,
				Key:           key,
				UploadId:      uploadID,
				PartNumber:    num,
				Body:          body,
				ContentLength: aws.Int64(n),
			})
			if err != nil {
				fail(s.putErr(name, err, body))
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: num}
		})
	}
	wg.Wait()

	err = firstErr
	if err == nil && ctx.Err() != nil {
		// Cancelled between parts, before any part noticed.
		err = fmt.Errorf("%s: %w", s.opMsg("put", name), ctx.Err())
	}
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             key,
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err != nil {
			err = s.classify("put", name, err)
		}
	}
	if err != nil {
		// Best effort, even if ctx is done; a bucket lifecycle rule for
		// incomplete uploads catches what this misses.
		abortCtx, cancelAbort := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancelAbort()
		_, _ = s.client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{
			Bucket:   &s.bucket,
			Key:      key,
			UploadId: uploadID,
		})
		return err
	}
	return nil
}

// putErr classifies a failed upload of body, blaming the caller's data if
// reading it failed.
func (s *Store) putErr(name string, err error, body *partBody) error {
	if body.err != nil {
		return s.sourceErr(name, body.err)
	}
	return s.classify("put", name, err)
}

// sourceErr reports an error of the caller's reader: kept as is if the caller
// classified it, permanent otherwise.
func (s *Store) sourceErr(name string, err error) error {
	err = fmt.Errorf("%s: reading the data: %w", s.opMsg("put", name), err)
	if !store.IsClassified(err) {
		err = store.Permanent(err)
	}
	return err
}

// shortErr reports data that ended after got of the announced want bytes.
func (s *Store) shortErr(name string, got, want int64) error {
	return store.Permanent(fmt.Errorf("%s: the data ended after %d of %d bytes: %w", s.opMsg("put", name), got, want, io.ErrUnexpectedEOF))
}
