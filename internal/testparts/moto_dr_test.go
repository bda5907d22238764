package testparts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
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

// Failover in small, as engine/dr does it: an image registered over
// replica snapshots, an instance launched from it, its cleanup.

// drSnapshots makes the replica snapshots of a two-disk machine with the EBS
// direct APIs: a 1 GiB boot disk and a 2 GiB data disk, each with some blocks.
// It returns their IDs and blocks.
func drSnapshots(t *testing.T, c *ebs.Client) ([]string, []map[int32][]byte) {
	t.Helper()
	const lastOf2GiB = 2*(1<<30)/MotoBlockSize - 1
	blocks := []map[int32][]byte{
		{0: randomBlock(t), 2: randomBlock(t)},
		{1: randomBlock(t), lastOf2GiB: randomBlock(t)},
	}
	return []string{snapshotWith(t, c, 1, "", blocks[0]), snapshotWith(t, c, 2, "", blocks[1])}, blocks
}

// drTags are the tags engine/dr puts on what a run creates.
func drTags(kind ec2types.ResourceType, run, machine string) ec2types.TagSpecification {
	return ec2types.TagSpecification{ResourceType: kind, Tags: []ec2types.Tag{
		{Key: aws.String("Name"), Value: aws.String(machine)},
		{Key: aws.String("haven:run"), Value: aws.String(run)},
		{Key: aws.String("haven:machine"), Value: aws.String(machine)},
	}}
}

func drFilters(run, machine string) []ec2types.Filter {
	return []ec2types.Filter{
		{Name: aws.String("tag:haven:run"), Values: []string{run}},
		{Name: aws.String("tag:haven:machine"), Values: []string{machine}},
	}
}

// drImageInput is RegisterImage as engine/dr calls it: the first snapshot
// boots at /dev/sda1, the others follow at /dev/sdb on.
func drImageInput(run, machine string, snapshots []string, sizes []int32) *ec2.RegisterImageInput {
	in := &ec2.RegisterImageInput{
		Name:               aws.String("haven-" + run + "-" + machine),
		Description:        aws.String("Haven failover of " + machine),
		RootDeviceName:     aws.String("/dev/sda1"),
		VirtualizationType: aws.String("hvm"),
		EnaSupport:         aws.Bool(true),
		Architecture:       ec2types.ArchitectureValuesX8664,
		BootMode:           ec2types.BootModeValuesUefi,
		TagSpecifications:  []ec2types.TagSpecification{drTags(ec2types.ResourceTypeImage, run, machine)},
	}
	for i, id := range snapshots {
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, ec2types.BlockDeviceMapping{
			DeviceName: aws.String(drDevice(i)),
			Ebs: &ec2types.EbsBlockDevice{
				SnapshotId:          aws.String(id),
				VolumeSize:          aws.Int32(sizes[i]),
				VolumeType:          ec2types.VolumeTypeGp3,
				DeleteOnTermination: aws.Bool(true),
			},
		})
	}
	return in
}

func drDevice(i int) string {
	if i == 0 {
		return "/dev/sda1"
	}
	return "/dev/sd" + string(rune('a'+i))
}

func registerImage(t *testing.T, c *ec2.Client, in *ec2.RegisterImageInput) string {
	t.Helper()
	out, err := c.RegisterImage(t.Context(), in)
	if err != nil {
		t.Fatalf("RegisterImage: %v", err)
	}
	return aws.ToString(out.ImageId)
}

// describeImages returns the images of this account that carry the tags.
func describeImages(t *testing.T, c *ec2.Client, filters []ec2types.Filter) []ec2types.Image {
	t.Helper()
	out, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
	if err != nil {
		t.Fatalf("DescribeImages: %v", err)
	}
	return out.Images
}

func TestMotoEC2RegisterImage(t *testing.T) {
	ep := Moto(t)
	c, ec := MotoEBSClient(ep), MotoEC2Client(ep)
	snaps, _ := drSnapshots(t, c)
	run := "register-" + randomSuffix(t)
	// The data disk's volume is larger than its snapshot, as after a
	// disk grew.
	imageID := registerImage(t, ec, drImageInput(run, "web", snaps, []int32{1, 3}))

	images := describeImages(t, ec, drFilters(run, "web"))
	if len(images) != 1 || aws.ToString(images[0].ImageId) != imageID {
		t.Fatalf("DescribeImages by the image's tags: %d images, want just %s", len(images), imageID)
	}
	im := images[0]
	if aws.ToString(im.RootDeviceName) != "/dev/sda1" || im.RootDeviceType != ec2types.DeviceTypeEbs {
		t.Errorf("root device %q (%s), want /dev/sda1 (ebs)", aws.ToString(im.RootDeviceName), im.RootDeviceType)
	}
	if im.Architecture != ec2types.ArchitectureValuesX8664 || aws.ToString((*string)(&im.VirtualizationType)) != "hvm" ||
		!aws.ToBool(im.EnaSupport) || aws.ToString((*string)(&im.BootMode)) != "uefi" {
		t.Errorf("architecture %q, virtualization %q, ENA %v, boot mode %q; want x86_64, hvm, true, uefi",
			im.Architecture, im.VirtualizationType, aws.ToBool(im.EnaSupport), im.BootMode)
	}
	if im.State != ec2types.ImageStateAvailable {
		t.Errorf("state %q, want available", im.State)
	}
	tags := map[string]string{}
	for _, tag := range im.Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if tags["haven:run"] != run || tags["haven:machine"] != "web" || tags["Name"] != "web" {
		t.Errorf("image tags %v, want those it was registered with", tags)
	}
	type mapping struct {
		device, snapshot string
		size             int32
		volumeType       ec2types.VolumeType
		deleteOnTerm     bool
	}
	var got []mapping
	for _, m := range im.BlockDeviceMappings {
		if m.Ebs == nil {
			t.Fatalf("mapping %s has no EBS volume", aws.ToString(m.DeviceName))
		}
		got = append(got, mapping{aws.ToString(m.DeviceName), aws.ToString(m.Ebs.SnapshotId), aws.ToInt32(m.Ebs.VolumeSize), m.Ebs.VolumeType, aws.ToBool(m.Ebs.DeleteOnTermination)})
	}
	want := []mapping{{"/dev/sda1", snaps[0], 1, ec2types.VolumeTypeGp3, true}, {"/dev/sdb", snaps[1], 3, ec2types.VolumeTypeGp3, true}}
	if !slices.Equal(got, want) {
		t.Errorf("block device mappings %+v, want %+v", got, want)
	}

	// An image registered over snapshots has no snapshot of its own (moto
	// makes one for its images), and keeps those it maps from deletion.
	own, err := ec.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	for _, s := range own.Snapshots {
		if strings.Contains(aws.ToString(s.Description), imageID) {
			t.Errorf("snapshot %s (%q) was made for the image", aws.ToString(s.SnapshotId), aws.ToString(s.Description))
		}
	}
	_, err = ec.DeleteSnapshot(t.Context(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snaps[1])})
	wantAPIError(t, "DeleteSnapshot of a snapshot the image maps", err, http.StatusBadRequest, "InvalidSnapshot.InUse", snaps[1], imageID)

	if _, err := ec.DeregisterImage(t.Context(), &ec2.DeregisterImageInput{ImageId: aws.String(imageID)}); err != nil {
		t.Fatalf("DeregisterImage: %v", err)
	}
	if images := describeImages(t, ec, drFilters(run, "web")); len(images) != 0 {
		t.Errorf("DescribeImages after DeregisterImage: %d images, want none", len(images))
	}
	if _, err := ec.DeleteSnapshot(t.Context(), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snaps[1])}); err != nil {
		t.Errorf("DeleteSnapshot after DeregisterImage: %v", err)
	}
}

func TestMotoEC2RegisterImageInvalid(t *testing.T) {
	ep := Moto(t)
	c, ec := MotoEBSClient(ep), MotoEC2Client(ep)
	snaps, _ := drSnapshots(t, c)
	run := "refused-" + randomSuffix(t)
	const missing = "snap-0123456789abcdef0"
	for _, tc := range []struct {
		name   string
		change func(*ec2.RegisterImageInput)
		code   string
		words  []string
	}{
		{"unknown snapshot", func(in *ec2.RegisterImageInput) { in.BlockDeviceMappings[1].Ebs.SnapshotId = aws.String(missing) },
			"InvalidSnapshot.NotFound", []string{missing}},
		{"root device not mapped", func(in *ec2.RegisterImageInput) { in.RootDeviceName = aws.String("/dev/xvda") },
			"InvalidParameterValue", []string{"/dev/xvda"}},
		{"volume smaller than its snapshot", func(in *ec2.RegisterImageInput) { in.BlockDeviceMappings[1].Ebs.VolumeSize = aws.Int32(1) },
			"InvalidBlockDeviceMapping", []string{snaps[1], "smaller"}},
		{"device mapped twice", func(in *ec2.RegisterImageInput) { in.BlockDeviceMappings[1].DeviceName = aws.String("/dev/sda1") },
			"InvalidBlockDeviceMapping", []string{"/dev/sda1"}},
		{"tags for a snapshot", func(in *ec2.RegisterImageInput) { in.TagSpecifications[0].ResourceType = ec2types.ResourceTypeSnapshot },
			"InvalidParameterValue", []string{"snapshot"}},
	} {
		// A machine of its own each, so that no refusal depends on another.
		in := drImageInput(run, strings.ReplaceAll(tc.name, " ", "-"), snaps, []int32{1, 2})
		tc.change(in)
		_, err := ec.RegisterImage(t.Context(), in)
		wantAPIError(t, tc.name, err, http.StatusBadRequest, tc.code, tc.words...)
	}
	if images := describeImages(t, ec, []ec2types.Filter{{Name: aws.String("tag:haven:run"), Values: []string{run}}}); len(images) != 0 {
		t.Fatalf("refused RegisterImage calls registered %d images", len(images))
	}
	// AWS refuses a second image of the same name, which engine/dr relies
	// on against twins.
	first := registerImage(t, ec, drImageInput(run, "db", snaps, []int32{1, 2}))
	_, err := ec.RegisterImage(t.Context(), drImageInput(run, "db", snaps, []int32{1, 2}))
	wantAPIError(t, "RegisterImage of a name in use", err, http.StatusBadRequest, "InvalidAMIName.Duplicate", first)
}

// instanceVolumes returns the instance's volume IDs by device, and the
// instance as DescribeInstances shows it.
func instanceVolumes(t *testing.T, c *ec2.Client, instanceID string) (map[string]string, ec2types.Instance) {
	t.Helper()
	out, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	if err != nil {
		t.Fatalf("DescribeInstances %s: %v", instanceID, err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances %s: %d reservations, want 1 with the instance", instanceID, len(out.Reservations))
	}
	inst := out.Reservations[0].Instances[0]
	vols := map[string]string{}
	for _, m := range inst.BlockDeviceMappings {
		vols[aws.ToString(m.DeviceName)] = aws.ToString(m.Ebs.VolumeId)
	}
	return vols, inst
}

func describeVolumes(t *testing.T, c *ec2.Client, in *ec2.DescribeVolumesInput) map[string]ec2types.Volume {
	t.Helper()
	out, err := c.DescribeVolumes(t.Context(), in)
	if err != nil {
		t.Fatalf("DescribeVolumes: %v", err)
	}
	vols := map[string]ec2types.Volume{}
	for _, v := range out.Volumes {
		vols[aws.ToString(v.VolumeId)] = v
	}
	return vols
}

func TestMotoEC2LaunchFromImage(t *testing.T) {
	ep := Moto(t)
	ctx := t.Context()
	c, ec := MotoEBSClient(ep), MotoEC2Client(ep)
	snaps, blocks := drSnapshots(t, c)
	run := "launch-" + randomSuffix(t)
	imageID := registerImage(t, ec, drImageInput(run, "app", snaps, []int32{1, 2}))

	subnetID, prefix := MotoSubnet(t, ep)
	subnets, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnetID}})
	if err != nil {
		t.Fatalf("DescribeSubnets: %v", err)
	}
	sg, err := ec.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("app-" + run), Description: aws.String("app"), VpcId: subnets.Subnets[0].VpcId,
	})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	a := prefix.Addr().As4()
	a[3] = 10
	ip := netip.AddrFrom4(a)
	userData := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho failed over\n"))
	in := &ec2.RunInstancesInput{
		ImageId:          aws.String(imageID),
		InstanceType:     ec2types.InstanceTypeT3Micro,
		MinCount:         aws.Int32(1),
		MaxCount:         aws.Int32(1),
		SubnetId:         aws.String(subnetID),
		PrivateIpAddress: aws.String(ip.String()),
		SecurityGroupIds: []string{aws.ToString(sg.GroupId)},
		UserData:         aws.String(userData),
		ClientToken:      aws.String("token-" + run),
		TagSpecifications: []ec2types.TagSpecification{
			drTags(ec2types.ResourceTypeInstance, run, "app"), drTags(ec2types.ResourceTypeVolume, run, "app"),
		},
	}
	out, err := ec.RunInstances(ctx, in)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if len(out.Instances) != 1 {
		t.Fatalf("RunInstances: %d instances, want 1", len(out.Instances))
	}
	instanceID := aws.ToString(out.Instances[0].InstanceId)

	vols, inst := instanceVolumes(t, ec, instanceID)
	if aws.ToString(inst.RootDeviceName) != "/dev/sda1" || aws.ToString(inst.ImageId) != imageID {
		t.Errorf("instance: root device %q, image %s; want /dev/sda1, %s", aws.ToString(inst.RootDeviceName), aws.ToString(inst.ImageId), imageID)
	}
	if aws.ToString(inst.SubnetId) != subnetID || aws.ToString(inst.PrivateIpAddress) != ip.String() {
		t.Errorf("instance: subnet %s, IP %s; want %s, %s", aws.ToString(inst.SubnetId), aws.ToString(inst.PrivateIpAddress), subnetID, ip)
	}
	if len(vols) != 2 || vols["/dev/sda1"] == "" || vols["/dev/sdb"] == "" {
		t.Fatalf("instance volumes %v, want one at /dev/sda1 and one at /dev/sdb", vols)
	}
	for _, m := range inst.BlockDeviceMappings {
		if !aws.ToBool(m.Ebs.DeleteOnTermination) {
			t.Errorf("instance's volume at %s is not deleted on termination, as the image maps it", aws.ToString(m.DeviceName))
		}
	}
	tagged := describeVolumes(t, ec, &ec2.DescribeVolumesInput{Filters: drFilters(run, "app")})
	for i, device := range []string{"/dev/sda1", "/dev/sdb"} {
		volID := vols[device]
		v, ok := tagged[volID]
		if !ok {
			t.Errorf("volume %s at %s does not carry the volume tags", volID, device)
			continue
		}
		if aws.ToString(v.SnapshotId) != snaps[i] || aws.ToInt32(v.Size) != int32(i+1) {
			t.Errorf("volume at %s: snapshot %s, %d GiB; want %s, %d GiB", device, aws.ToString(v.SnapshotId), aws.ToInt32(v.Size), snaps[i], i+1)
		}
		if len(v.Attachments) != 1 || aws.ToString(v.Attachments[0].InstanceId) != instanceID || !aws.ToBool(v.Attachments[0].DeleteOnTermination) {
			t.Errorf("volume at %s: attachments %+v, want to %s, deleted on termination", device, v.Attachments, instanceID)
		}
		for index, data := range blocks[i] {
			got, err := MotoVolumeBlock(ctx, ep, volID, index)
			if err != nil {
				t.Fatalf("MotoVolumeBlock %s %d: %v", volID, index, err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("volume at %s: block %d differs from its snapshot's", device, index)
			}
		}
	}
	if len(tagged) != 2 {
		t.Errorf("%d volumes carry the volume tags, want the instance's 2", len(tagged))
	}
	attr, err := ec.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatalf("DescribeInstanceAttribute userData: %v", err)
	}
	if attr.UserData == nil || aws.ToString(attr.UserData.Value) != userData {
		t.Errorf("user data %v, want %q", attr.UserData, userData)
	}

	// The same request again, as after a lost answer: the same instance.
	runAgain := func(what string) {
		t.Helper()
		again, err := ec.RunInstances(ctx, in)
		if err != nil {
			t.Fatalf("RunInstances %s: %v", what, err)
		}
		if len(again.Instances) != 1 || aws.ToString(again.Instances[0].InstanceId) != instanceID || aws.ToString(again.ReservationId) != aws.ToString(out.ReservationId) {
			t.Errorf("RunInstances %s with the same client token: reservation %s, %d instances; want %s with %s",
				what, aws.ToString(again.ReservationId), len(again.Instances), aws.ToString(out.ReservationId), instanceID)
		}
		found, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: drFilters(run, "app")})
		if err != nil {
			t.Fatalf("DescribeInstances: %v", err)
		}
		var ids []string
		for _, r := range found.Reservations {
			for _, i := range r.Instances {
				ids = append(ids, aws.ToString(i.InstanceId))
			}
		}
		if !slices.Equal(ids, []string{instanceID}) {
			t.Errorf("instances of the run after RunInstances %s: %v, want just %s", what, ids, instanceID)
		}
	}
	runAgain("again")
	changed := *in
	changed.InstanceType = ec2types.InstanceTypeM5Large
	_, err = ec.RunInstances(ctx, &changed)
	wantAPIError(t, "RunInstances with the same client token and other parameters", err, http.StatusBadRequest, "IdempotentParameterMismatch", aws.ToString(in.ClientToken))

	// Termination deletes the volumes marked DeleteOnTermination.
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}}); err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	if left := describeVolumes(t, ec, &ec2.DescribeVolumesInput{Filters: drFilters(run, "app")}); len(left) != 0 {
		t.Errorf("volumes left after TerminateInstances: %d, want none", len(left))
	}
	// The token still names the terminated instance: no new launch.
	runAgain("after termination")
	terminated, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: append(drFilters(run, "app"),
		ec2types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}})})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if len(terminated.Reservations) != 0 {
		t.Errorf("live instances of the run after termination: %d reservations, want none", len(terminated.Reservations))
	}

	if _, err := ec.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(imageID)}); err != nil {
		t.Fatalf("DeregisterImage: %v", err)
	}
	if images := describeImages(t, ec, drFilters(run, "app")); len(images) != 0 {
		t.Errorf("DescribeImages after DeregisterImage: %d images, want none", len(images))
	}
}

// TestMotoEC2RunInstancesMappings checks that RunInstances' own block device
// mappings override the image's device by device, as in AWS.
func TestMotoEC2RunInstancesMappings(t *testing.T) {
	ep := Moto(t)
	ctx := t.Context()
	c, ec := MotoEBSClient(ep), MotoEC2Client(ep)
	snaps, blocks := drSnapshots(t, c)
	run := "mappings-" + randomSuffix(t)
	imageID := registerImage(t, ec, drImageInput(run, "m", snaps, []int32{1, 2}))
	launch := func(mappings ...ec2types.BlockDeviceMapping) string {
		t.Helper()
		out, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(imageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), BlockDeviceMappings: mappings,
			TagSpecifications: []ec2types.TagSpecification{drTags(ec2types.ResourceTypeVolume, run, "m")},
		})
		if err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}

	// A larger data volume (still from its snapshot, still deleted on
	// termination), the boot volume kept, an empty third volume added.
	id := launch(
		ec2types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdb"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(4)}},
		ec2types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdc"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(1)}},
	)
	vols, _ := instanceVolumes(t, ec, id)
	all := describeVolumes(t, ec, &ec2.DescribeVolumesInput{Filters: drFilters(run, "m")})
	type volume struct {
		snapshot     string
		size         int32
		deleteOnTerm bool
	}
	got := map[string]volume{}
	for device, volID := range vols {
		v := all[volID]
		var dot bool
		if len(v.Attachments) == 1 {
			dot = aws.ToBool(v.Attachments[0].DeleteOnTermination)
		}
		got[device] = volume{aws.ToString(v.SnapshotId), aws.ToInt32(v.Size), dot}
	}
	want := map[string]volume{"/dev/sda1": {snaps[0], 1, true}, "/dev/sdb": {snaps[1], 4, true}, "/dev/sdc": {"", 1, false}}
	if len(got) != len(want) {
		t.Errorf("volumes %+v, want %+v", got, want)
	}
	for device, w := range want {
		if got[device] != w {
			t.Errorf("volume at %s: %+v, want %+v", device, got[device], w)
		}
	}
	for index, data := range blocks[1] {
		b, err := MotoVolumeBlock(ctx, ep, vols["/dev/sdb"], index)
		if err != nil {
			t.Fatalf("MotoVolumeBlock: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Errorf("enlarged data volume: block %d differs from its snapshot's", index)
		}
	}

	// No data disk, and a boot volume kept after termination.
	id = launch(
		ec2types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdb"), NoDevice: aws.String("")},
		ec2types.BlockDeviceMapping{DeviceName: aws.String("/dev/sda1"), Ebs: &ec2types.EbsBlockDevice{DeleteOnTermination: aws.Bool(false)}},
	)
	vols, _ = instanceVolumes(t, ec, id)
	if len(vols) != 1 || vols["/dev/sda1"] == "" {
		t.Fatalf("volumes %v, want just the boot volume", vols)
	}
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	kept := describeVolumes(t, ec, &ec2.DescribeVolumesInput{VolumeIds: []string{vols["/dev/sda1"]}})
	if v, ok := kept[vols["/dev/sda1"]]; !ok || v.State != ec2types.VolumeStateAvailable {
		t.Errorf("boot volume not deleted on termination: %+v, want it available", v)
	}

	_, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(imageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdb"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(1)}}},
	})
	wantAPIError(t, "RunInstances with a volume smaller than its snapshot", err, http.StatusBadRequest, "InvalidBlockDeviceMapping", snaps[1])
}
