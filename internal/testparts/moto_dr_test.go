package testparts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Tests of what Haven's moto plug-in (moto_haven.py) adds to moto, through
// the real EBS and EC2 clients. Each fails if the plug-in's part is missing.

// randomBlock returns MotoBlockSize random bytes.
func randomBlock(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, MotoBlockSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Base64(data []byte) string {
	sum := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func startSnapshot(t *testing.T, c *ebs.Client, in *ebs.StartSnapshotInput) *ebs.StartSnapshotOutput {
	t.Helper()
	out, err := c.StartSnapshot(t.Context(), in)
	if err != nil {
		t.Fatalf("StartSnapshot: %v", err)
	}
	if out.Status != ebstypes.StatusPending {
		t.Fatalf("StartSnapshot: status %q, want pending", out.Status)
	}
	if aws.ToInt32(out.BlockSize) != MotoBlockSize {
		t.Fatalf("StartSnapshot: block size %d, want %d", aws.ToInt32(out.BlockSize), MotoBlockSize)
	}
	return out
}

func putBlock(t *testing.T, c *ebs.Client, snapshotID string, index int32, data []byte) {
	t.Helper()
	out, err := c.PutSnapshotBlock(t.Context(), &ebs.PutSnapshotBlockInput{
		SnapshotId:        aws.String(snapshotID),
		BlockIndex:        aws.Int32(index),
		BlockData:         bytes.NewReader(data),
		DataLength:        aws.Int32(int32(len(data))),
		Checksum:          aws.String(sha256Base64(data)),
		ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
	})
	if err != nil {
		t.Fatalf("PutSnapshotBlock %s block %d: %v", snapshotID, index, err)
	}
	if got := aws.ToString(out.Checksum); got != sha256Base64(data) {
		t.Fatalf("PutSnapshotBlock %s block %d: checksum %s, want %s", snapshotID, index, got, sha256Base64(data))
	}
}

func completeSnapshot(t *testing.T, c *ebs.Client, snapshotID string, changed int32) ebstypes.Status {
	t.Helper()
	out, err := c.CompleteSnapshot(t.Context(), &ebs.CompleteSnapshotInput{
		SnapshotId:         aws.String(snapshotID),
		ChangedBlocksCount: aws.Int32(changed),
	})
	if err != nil {
		t.Fatalf("CompleteSnapshot %s: %v", snapshotID, err)
	}
	return out.Status
}

// snapshotWith makes a completed snapshot of sizeGiB holding blocks, on top
// of parent if it is not empty, and returns its ID.
func snapshotWith(t *testing.T, c *ebs.Client, sizeGiB int32, parent string, blocks map[int32][]byte) string {
	t.Helper()
	in := &ebs.StartSnapshotInput{VolumeSize: aws.Int64(int64(sizeGiB))}
	if parent != "" {
		in.ParentSnapshotId = aws.String(parent)
	}
	id := aws.ToString(startSnapshot(t, c, in).SnapshotId)
	for i, data := range blocks {
		putBlock(t, c, id, i, data)
	}
	if status := completeSnapshot(t, c, id, int32(len(blocks))); status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot %s: status %q, want completed", id, status)
	}
	return id
}

// snapshotBlocks lists all blocks of a snapshot, page by page, and returns
// their tokens by index, in the order listed.
func snapshotBlocks(t *testing.T, c *ebs.Client, snapshotID string) ([]int32, map[int32]string) {
	t.Helper()
	var order []int32
	tokens := map[int32]string{}
	p := ebs.NewListSnapshotBlocksPaginator(c, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(snapshotID)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListSnapshotBlocks %s: %v", snapshotID, err)
		}
		if aws.ToInt32(page.BlockSize) != MotoBlockSize {
			t.Fatalf("ListSnapshotBlocks %s: block size %d, want %d", snapshotID, aws.ToInt32(page.BlockSize), MotoBlockSize)
		}
		for _, b := range page.Blocks {
			order = append(order, aws.ToInt32(b.BlockIndex))
			tokens[aws.ToInt32(b.BlockIndex)] = aws.ToString(b.BlockToken)
		}
	}
	return order, tokens
}

// getBlock reads a block with the EBS direct APIs and checks the checksum and
// length that come with it.
func getBlock(t *testing.T, c *ebs.Client, snapshotID string, index int32, token string) []byte {
	t.Helper()
	out, err := c.GetSnapshotBlock(t.Context(), &ebs.GetSnapshotBlockInput{
		SnapshotId: aws.String(snapshotID),
		BlockIndex: aws.Int32(index),
		BlockToken: aws.String(token),
	})
	if err != nil {
		t.Fatalf("GetSnapshotBlock %s block %d: %v", snapshotID, index, err)
	}
	defer out.BlockData.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(out.BlockData); err != nil {
		t.Fatalf("GetSnapshotBlock %s block %d: reading: %v", snapshotID, index, err)
	}
	data := buf.Bytes()
	if aws.ToInt32(out.DataLength) != int32(len(data)) || len(data) != MotoBlockSize {
		t.Fatalf("GetSnapshotBlock %s block %d: %d bytes, DataLength %d, want %d", snapshotID, index, len(data), aws.ToInt32(out.DataLength), MotoBlockSize)
	}
	if out.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 || aws.ToString(out.Checksum) != sha256Base64(data) {
		t.Fatalf("GetSnapshotBlock %s block %d: checksum %s %s, want SHA256 %s", snapshotID, index, out.ChecksumAlgorithm, aws.ToString(out.Checksum), sha256Base64(data))
	}
	return data
}

// wantAPIError checks that err is an AWS error with the HTTP status and code,
// whose message contains every one of words.
func wantAPIError(t *testing.T, what string, err error, status int, code string, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %d %s", what, status, code)
		return
	}
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || !errors.As(err, &re) {
		t.Errorf("%s: %v, want an AWS API error %d %s", what, err, status, code)
		return
	}
	if re.HTTPStatusCode() != status || ae.ErrorCode() != code {
		t.Errorf("%s: %d %s (%v), want %d %s", what, re.HTTPStatusCode(), ae.ErrorCode(), err, status, code)
	}
	for _, w := range words {
		if !strings.Contains(ae.ErrorMessage(), w) {
			t.Errorf("%s: message %q does not mention %q", what, ae.ErrorMessage(), w)
		}
	}
}

func TestMotoEBSParentSnapshot(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	parentData := map[int32][]byte{0: randomBlock(t), 1: randomBlock(t), 2: randomBlock(t)}
	parent := snapshotWith(t, c, 1, "", parentData)

	child := startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(parent)})
	childID := aws.ToString(child.SnapshotId)
	if got := aws.ToString(child.ParentSnapshotId); got != parent {
		t.Errorf("StartSnapshot: ParentSnapshotId %q, want %q", got, parent)
	}
	childData := map[int32][]byte{1: randomBlock(t), 5: randomBlock(t)}
	for i, data := range childData {
		putBlock(t, c, childID, i, data)
	}
	// The count is of the blocks put to the child, not those it inherits.
	if status := completeSnapshot(t, c, childID, 2); status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot child: status %q, want completed", status)
	}

	want := map[int32][]byte{0: parentData[0], 1: childData[1], 2: parentData[2], 5: childData[5]}
	order, tokens := snapshotBlocks(t, c, childID)
	if !slices.Equal(order, []int32{0, 1, 2, 5}) {
		t.Fatalf("child's blocks %v, want [0 1 2 5]: the parent's and its own", order)
	}
	for i, data := range want {
		if !bytes.Equal(getBlock(t, c, childID, i, tokens[i]), data) {
			t.Errorf("child's block %d differs from what was put to it or its parent", i)
		}
	}

	changed, err := c.ListChangedBlocks(t.Context(), &ebs.ListChangedBlocksInput{
		FirstSnapshotId:  aws.String(parent),
		SecondSnapshotId: aws.String(childID),
	})
	if err != nil {
		t.Fatalf("ListChangedBlocks: %v", err)
	}
	if aws.ToInt32(changed.BlockSize) != MotoBlockSize || aws.ToInt64(changed.VolumeSize) != 1 {
		t.Errorf("ListChangedBlocks: block size %d, volume size %d; want %d, 1", aws.ToInt32(changed.BlockSize), aws.ToInt64(changed.VolumeSize), MotoBlockSize)
	}
	var changedIdx []int32
	for _, b := range changed.ChangedBlocks {
		i := aws.ToInt32(b.BlockIndex)
		changedIdx = append(changedIdx, i)
		if b.SecondBlockToken == nil {
			t.Fatalf("changed block %d has no second token", i)
		}
		if !bytes.Equal(getBlock(t, c, childID, i, aws.ToString(b.SecondBlockToken)), childData[i]) {
			t.Errorf("changed block %d: second token reads other data than put to the child", i)
		}
		if first, ok := parentData[i]; ok {
			if b.FirstBlockToken == nil || !bytes.Equal(getBlock(t, c, parent, i, aws.ToString(b.FirstBlockToken)), first) {
				t.Errorf("changed block %d: first token does not read the parent's block", i)
			}
		} else if b.FirstBlockToken != nil {
			t.Errorf("changed block %d: first token %s, but the parent has no such block", i, aws.ToString(b.FirstBlockToken))
		}
	}
	if !slices.Equal(changedIdx, []int32{1, 5}) {
		t.Errorf("changed blocks %v, want [1 5]: only the blocks put to the child", changedIdx)
	}

	// Without a first snapshot, all the second's blocks are listed.
	all, err := c.ListChangedBlocks(t.Context(), &ebs.ListChangedBlocksInput{SecondSnapshotId: aws.String(childID)})
	if err != nil {
		t.Fatalf("ListChangedBlocks without first snapshot: %v", err)
	}
	var allIdx []int32
	for _, b := range all.ChangedBlocks {
		allIdx = append(allIdx, aws.ToInt32(b.BlockIndex))
	}
	if !slices.Equal(allIdx, []int32{0, 1, 2, 5}) {
		t.Errorf("ListChangedBlocks without first snapshot: %v, want [0 1 2 5]", allIdx)
	}
}

func TestMotoEBSParentSnapshotInvalid(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	pending := aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}).SnapshotId)
	big := snapshotWith(t, c, 2, "", nil)
	for _, tc := range []struct {
		name   string
		parent string
		size   int64
		words  []string
	}{
		{"missing parent", "snap-0123456789abcdef0", 1, []string{"snap-0123456789abcdef0", "does not exist"}},
		{"pending parent", pending, 1, []string{pending, "pending"}},
		{"smaller than parent", big, 1, []string{"VolumeSize", "smaller"}},
	} {
		_, err := c.StartSnapshot(t.Context(), &ebs.StartSnapshotInput{VolumeSize: aws.Int64(tc.size), ParentSnapshotId: aws.String(tc.parent)})
		wantAPIError(t, tc.name, err, http.StatusBadRequest, "ValidationException", tc.words...)
	}
}

func TestMotoEBSClientToken(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	start := func(token string) string {
		return aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ClientToken: aws.String(token)}).SnapshotId)
	}
	token := t.Name() + "-" + randomSuffix(t)
	first := start(token)
	if again := start(token); again != first {
		t.Errorf("StartSnapshot with the same client token: %s, want the first call's %s", again, first)
	}
	if other := start(token + "-other"); other == first {
		t.Errorf("StartSnapshot with another client token returned the same snapshot %s", first)
	}
}

func randomSuffix(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func TestMotoEBSPutSnapshotBlockValidation(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	id := aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}).SnapshotId)
	data := randomBlock(t)
	const blocksPerGiB = (1 << 30) / MotoBlockSize
	valid := func() *ebs.PutSnapshotBlockInput {
		return &ebs.PutSnapshotBlockInput{
			SnapshotId:        aws.String(id),
			BlockIndex:        aws.Int32(blocksPerGiB - 1), // the last block of 1 GiB
			BlockData:         bytes.NewReader(data),
			DataLength:        aws.Int32(MotoBlockSize),
			Checksum:          aws.String(sha256Base64(data)),
			ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		}
	}
	short := data[:4096]
	for _, tc := range []struct {
		name   string
		change func(*ebs.PutSnapshotBlockInput)
		words  []string
	}{
		{"wrong checksum", func(in *ebs.PutSnapshotBlockInput) { in.Checksum = aws.String(sha256Base64(short)) }, []string{"Checksum", "does not match"}},
		{"checksum not base64 SHA-256", func(in *ebs.PutSnapshotBlockInput) { in.Checksum = aws.String("not-a-checksum") }, []string{"Checksum"}},
		{"checksum algorithm", func(in *ebs.PutSnapshotBlockInput) { in.ChecksumAlgorithm = "MD5" }, []string{"ChecksumAlgorithm", "SHA256"}},
		{"data length differs from body", func(in *ebs.PutSnapshotBlockInput) { in.DataLength = aws.Int32(MotoBlockSize - 1) }, []string{"DataLength", "does not match"}},
		{"short block", func(in *ebs.PutSnapshotBlockInput) {
			in.BlockData, in.DataLength, in.Checksum = bytes.NewReader(short), aws.Int32(int32(len(short))), aws.String(sha256Base64(short))
		}, []string{"DataLength", "block size"}},
		{"index past the volume", func(in *ebs.PutSnapshotBlockInput) { in.BlockIndex = aws.Int32(blocksPerGiB) }, []string{"out of range"}},
		{"negative index", func(in *ebs.PutSnapshotBlockInput) { in.BlockIndex = aws.Int32(-1) }, []string{"out of range"}},
	} {
		in := valid()
		tc.change(in)
		_, err := c.PutSnapshotBlock(t.Context(), in)
		wantAPIError(t, tc.name, err, http.StatusBadRequest, "ValidationException", tc.words...)
	}
	// None of those was stored; a valid block is.
	if order, _ := snapshotBlocks(t, c, id); len(order) != 0 {
		t.Fatalf("rejected blocks were stored: %v", order)
	}
	if _, err := c.PutSnapshotBlock(t.Context(), valid()); err != nil {
		t.Fatalf("valid PutSnapshotBlock: %v", err)
	}
	if status := completeSnapshot(t, c, id, 1); status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot: status %q, want completed", status)
	}
	_, err := c.PutSnapshotBlock(t.Context(), valid())
	wantAPIError(t, "put to a completed snapshot", err, http.StatusBadRequest, "ValidationException", "completed", "pending")
	in := valid()
	in.SnapshotId = aws.String("snap-0123456789abcdef0")
	_, err = c.PutSnapshotBlock(t.Context(), in)
	wantAPIError(t, "put to a missing snapshot", err, http.StatusNotFound, "ResourceNotFoundException", "snap-0123456789abcdef0")
}

func TestMotoEBSGetSnapshotBlockToken(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	blocks := map[int32][]byte{3: randomBlock(t), 4: randomBlock(t)}
	id := snapshotWith(t, c, 1, "", blocks)
	_, tokens := snapshotBlocks(t, c, id)
	if !bytes.Equal(getBlock(t, c, id, 3, tokens[3]), blocks[3]) {
		t.Fatal("block 3 reads other data than was put")
	}
	for _, tc := range []struct {
		name  string
		index int32
		token string
	}{
		{"another block's token", 3, tokens[4]},
		{"made-up token", 3, "not-a-token"},
		{"block never put", 7, tokens[3]},
	} {
		_, err := c.GetSnapshotBlock(t.Context(), &ebs.GetSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(tc.index), BlockToken: aws.String(tc.token),
		})
		wantAPIError(t, tc.name, err, http.StatusBadRequest, "ValidationException", "token")
	}
}

func TestMotoEBSChangedBlocksCount(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	ec := MotoEC2Client(ep)
	b := randomBlock(t)

	// Putting the same block twice counts once.
	good := aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}).SnapshotId)
	putBlock(t, c, good, 0, b)
	putBlock(t, c, good, 0, b)
	putBlock(t, c, good, 1, b)
	if status := completeSnapshot(t, c, good, 2); status != ebstypes.StatusCompleted {
		t.Errorf("CompleteSnapshot with the right count: %q, want completed", status)
	}

	bad := aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}).SnapshotId)
	putBlock(t, c, bad, 0, b)
	putBlock(t, c, bad, 1, b)
	if status := completeSnapshot(t, c, bad, 3); status != ebstypes.StatusError {
		t.Errorf("CompleteSnapshot with 3 changed blocks of 2 put: %q, want error", status)
	}

	out, err := ec.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{good, bad}})
	if err != nil {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	states := map[string]ec2types.SnapshotState{}
	for _, s := range out.Snapshots {
		states[aws.ToString(s.SnapshotId)] = s.State
	}
	if states[good] != ec2types.SnapshotStateCompleted || states[bad] != ec2types.SnapshotStateError {
		t.Errorf("EC2 states: %s %q, %s %q; want completed, error", good, states[good], bad, states[bad])
	}
}

func TestMotoEBSPagination(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	want := []int32{0, 2, 4, 7, 9}
	// Put out of order: listings are sorted by index all the same.
	blocks := map[int32][]byte{}
	id := aws.ToString(startSnapshot(t, c, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}).SnapshotId)
	for _, i := range []int32{9, 2, 7, 0, 4} {
		blocks[i] = randomBlock(t)
		putBlock(t, c, id, i, blocks[i])
	}
	if status := completeSnapshot(t, c, id, 5); status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot: %q", status)
	}

	type page struct {
		indexes []int32
		next    *string
	}
	listBlocks := func(token *string, startIdx *int32) page {
		out, err := c.ListSnapshotBlocks(t.Context(), &ebs.ListSnapshotBlocksInput{
			SnapshotId: aws.String(id), MaxResults: aws.Int32(2), NextToken: token, StartingBlockIndex: startIdx,
		})
		if err != nil {
			t.Fatalf("ListSnapshotBlocks: %v", err)
		}
		var p page
		for _, b := range out.Blocks {
			p.indexes = append(p.indexes, aws.ToInt32(b.BlockIndex))
			if !bytes.Equal(getBlock(t, c, id, aws.ToInt32(b.BlockIndex), aws.ToString(b.BlockToken)), blocks[aws.ToInt32(b.BlockIndex)]) {
				t.Errorf("block %d reads other data than was put", aws.ToInt32(b.BlockIndex))
			}
		}
		p.next = out.NextToken
		return p
	}
	listChanged := func(token *string, startIdx *int32) page {
		out, err := c.ListChangedBlocks(t.Context(), &ebs.ListChangedBlocksInput{
			SecondSnapshotId: aws.String(id), MaxResults: aws.Int32(2), NextToken: token, StartingBlockIndex: startIdx,
		})
		if err != nil {
			t.Fatalf("ListChangedBlocks: %v", err)
		}
		var p page
		for _, b := range out.ChangedBlocks {
			p.indexes = append(p.indexes, aws.ToInt32(b.BlockIndex))
		}
		p.next = out.NextToken
		return p
	}
	for name, list := range map[string]func(token *string, startIdx *int32) page{"ListSnapshotBlocks": listBlocks, "ListChangedBlocks": listChanged} {
		var got [][]int32
		var token *string
		for range 10 {
			p := list(token, nil)
			got = append(got, p.indexes)
			if token = p.next; token == nil {
				break
			}
		}
		if !slices.EqualFunc(got, [][]int32{{0, 2}, {4, 7}, {9}}, slices.Equal) {
			t.Errorf("%s by pages of 2: %v, want [[0 2] [4 7] [9]] (of %v)", name, got, want)
		}
		// Starting at a block index, and going on from there with the token.
		p := list(nil, aws.Int32(3))
		if !slices.Equal(p.indexes, []int32{4, 7}) || p.next == nil {
			t.Fatalf("%s from index 3: %v, next token %v; want [4 7] and a token", name, p.indexes, p.next)
		}
		if p = list(p.next, aws.Int32(3)); !slices.Equal(p.indexes, []int32{9}) || p.next != nil {
			t.Errorf("%s from index 3, second page: %v, next token %v; want [9] and none", name, p.indexes, p.next)
		}
	}
	_, err := c.ListSnapshotBlocks(t.Context(), &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), NextToken: aws.String("bogus")})
	wantAPIError(t, "made-up page token", err, http.StatusBadRequest, "ValidationException", "token")
}

func TestMotoEC2DeleteSnapshotDeletesBlocks(t *testing.T) {
	ep := Moto(t)
	c := MotoEBSClient(ep)
	id := snapshotWith(t, c, 1, "", map[int32][]byte{0: randomBlock(t)})
	_, tokens := snapshotBlocks(t, c, id)
	getBlock(t, c, id, 0, tokens[0]) // readable before

	if _, err := MotoEC2Client(ep).DeleteSnapshot(t.Context(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	_, err := c.GetSnapshotBlock(t.Context(), &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: aws.Int32(0), BlockToken: aws.String(tokens[0])})
	wantAPIError(t, "GetSnapshotBlock after DeleteSnapshot", err, http.StatusNotFound, "ResourceNotFoundException", id)
	_, err = c.ListSnapshotBlocks(t.Context(), &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
	wantAPIError(t, "ListSnapshotBlocks after DeleteSnapshot", err, http.StatusNotFound, "ResourceNotFoundException", id)
}

// TestMotoVolumeRoundTrip is failover and failback in small: a replica
// snapshot, a volume made from it, a guest writing to the volume, an EC2
// snapshot of the volume read back with the EBS direct APIs.
func TestMotoVolumeRoundTrip(t *testing.T) {
	ep := Moto(t)
	ctx := t.Context()
	c, ec := MotoEBSClient(ep), MotoEC2Client(ep)
	replica := map[int32][]byte{0: randomBlock(t), 1: randomBlock(t), 3: randomBlock(t)}
	replicaID := snapshotWith(t, c, 1, "", replica)

	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(MotoRegion + "a"), SnapshotId: aws.String(replicaID)})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	volID := aws.ToString(vol.VolumeId)
	if aws.ToInt32(vol.Size) != 1 {
		t.Errorf("volume from a 1 GiB snapshot has %d GiB", aws.ToInt32(vol.Size))
	}
	zeros := make([]byte, MotoBlockSize)
	for i := range int32(5) {
		want, ok := replica[i]
		if !ok {
			want = zeros
		}
		got, err := MotoVolumeBlock(ctx, ep, volID, i)
		if err != nil {
			t.Fatalf("MotoVolumeBlock %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("volume block %d differs from the snapshot's", i)
		}
	}

	// The guest writes after failover.
	written := map[int32][]byte{3: randomBlock(t), 5: randomBlock(t)}
	for i, data := range written {
		if err := MotoWriteVolumeBlock(ctx, ep, volID, i, data); err != nil {
			t.Fatalf("MotoWriteVolumeBlock %d: %v", i, err)
		}
	}
	if err := MotoWriteVolumeBlock(ctx, ep, volID, 6, zeros[:100]); err == nil {
		t.Error("MotoWriteVolumeBlock with 100 bytes: no error")
	}
	if _, err := MotoVolumeBlock(ctx, ep, "vol-0123456789abcdef0", 0); err == nil {
		t.Error("MotoVolumeBlock of a missing volume: no error")
	}

	snap, err := ec.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(volID)})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	if snap.State != ec2types.SnapshotStateCompleted {
		t.Errorf("CreateSnapshot: state %q, want completed", snap.State)
	}
	// Written after the snapshot: not in it.
	if err := MotoWriteVolumeBlock(ctx, ep, volID, 7, randomBlock(t)); err != nil {
		t.Fatalf("MotoWriteVolumeBlock 7: %v", err)
	}

	want := map[int32][]byte{0: replica[0], 1: replica[1], 3: written[3], 5: written[5]}
	order, tokens := snapshotBlocks(t, c, snapID)
	if !slices.Equal(order, []int32{0, 1, 3, 5}) {
		t.Fatalf("blocks of the volume's snapshot: %v, want [0 1 3 5]", order)
	}
	for i, data := range want {
		if !bytes.Equal(getBlock(t, c, snapID, i, tokens[i]), data) {
			t.Errorf("block %d of the volume's snapshot differs from the volume's", i)
		}
	}

	// Failback reads only what changed since the replica.
	changed, err := c.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(replicaID), SecondSnapshotId: aws.String(snapID)})
	if err != nil {
		t.Fatalf("ListChangedBlocks: %v", err)
	}
	var changedIdx []int32
	for _, b := range changed.ChangedBlocks {
		changedIdx = append(changedIdx, aws.ToInt32(b.BlockIndex))
	}
	if !slices.Equal(changedIdx, []int32{3, 5}) {
		t.Errorf("changed since the replica: %v, want [3 5]", changedIdx)
	}
}

func TestShebangPython(t *testing.T) {
	dir := t.TempDir()
	python := filepath.Join(dir, "python3.11")
	if err := os.WriteFile(python, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tc := range []struct {
		script, want string
	}{
		{"#!" + python + "\nimport sys\n", python},
		{"#!/usr/bin/env python3.11\n", python},
		{"#!/usr/bin/env -S PYTHONUTF8=1 python3.11 -u\n", python},
		{"#!/bin/sh\n'''exec' \"" + python + "\" \"$0\" \"$@\"\n' '''\n", python},
		{"#!/usr/bin/env bash\nexec pyenv exec moto_server\n", ""},
		{"#!" + filepath.Join(dir, "python-missing") + "\n", ""},
		{"import sys\n", ""},
	} {
		script := filepath.Join(dir, "moto_server")
		if err := os.WriteFile(script, []byte(tc.script), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := shebangPython(script); got != tc.want {
			t.Errorf("shebangPython(%q) = %q, want %q", tc.script, got, tc.want)
		}
	}
}
