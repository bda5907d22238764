package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
)

func testID(n int) format.ID {
	var id format.ID
	for i := range id {
		id[i] = byte(n*7 + i)
	}
	return id
}

// chunkSizes covers empty chunks, one-byte chunks and a spread of others.
func chunkSizes(rng *rand.Rand, n int) []int {
	sizes := []int{0, 1, 0, 100}
	for len(sizes) < n {
		sizes = append(sizes, rng.IntN(20000))
	}
	return sizes
}

func TestChunkFramesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var want []wire.ChunkFrame
	var body []byte
	for i, size := range chunkSizes(rng, 500) {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		f := wire.ChunkFrame{Type: format.Type(i % 3), ID: testID(i), Data: data}
		want = append(want, f)
		body = wire.AppendChunkFrame(body, f.Type, f.ID, f.Data)
	}

	cr := wire.NewChunkFrameReader(bytes.NewReader(body))
	var got []wire.ChunkFrame
	for {
		f, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", len(got), err)
		}
		got = append(got, f)
	}
	// Compared only after all were read: the caller keeps every frame's data.
	if len(got) != len(want) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].ID != want[i].ID || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("frame %d: got type %d id %s %d bytes, want type %d id %s %d bytes",
				i, got[i].Type, got[i].ID.Short(), len(got[i].Data), want[i].Type, want[i].ID.Short(), len(want[i].Data))
		}
	}
}

func TestEmptyUploadBodyHasNoFrames(t *testing.T) {
	if _, err := wire.NewChunkFrameReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Fatalf("empty body: got %v, want io.EOF", err)
	}
}

// The layout is what agents of other versions send and read: pin it byte
// for byte, not only through a round trip.
func TestChunkFrameLayout(t *testing.T) {
	id := testID(3)
	got := wire.AppendChunkFrame([]byte("prev"), format.Root, id, []byte("abc"))
	want := append([]byte("prev"), byte(format.Root))
	want = append(want, id[:]...)
	want = append(want, 3, 0, 0, 0)
	want = append(want, "abc"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("frame bytes\n got %x\nwant %x", got, want)
	}
	if wire.ChunkHeaderSize != 37 {
		t.Fatalf("ChunkHeaderSize = %d, want 37", wire.ChunkHeaderSize)
	}
}

func TestLoadFrameLayout(t *testing.T) {
	var b bytes.Buffer
	if err := wire.WriteLoadFrame(&b, 0x01020304, []byte("xy")); err != nil {
		t.Fatal(err)
	}
	want := []byte{4, 3, 2, 1, 2, 0, 0, 0, 'x', 'y'}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("frame bytes\n got %x\nwant %x", b.Bytes(), want)
	}
}

// chunkHeader is a chunk frame header declaring size bytes of data.
func chunkHeader(id format.ID, size uint32) []byte {
	h := append([]byte{byte(format.Data)}, id[:]...)
	return binary.LittleEndian.AppendUint32(h, size)
}

// failReader fails the test if read: it stands for data the reader must
// not ask for.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Fatal("read past the point where the frame was already refused")
	return 0, nil
}

var errNetwork = errors.New("connection reset")

func TestChunkFrameErrors(t *testing.T) {
	good := wire.AppendChunkFrame(nil, format.Data, testID(1), []byte("hello"))
	id := testID(2)
	cases := []struct {
		name string
		body io.Reader
		want []error // every one must match
	}{
		{"header cut after one byte", bytes.NewReader(append(good, 0)), []error{wire.ErrTruncatedHeader, io.ErrUnexpectedEOF}},
		{"header cut before the size", bytes.NewReader(append(good, chunkHeader(id, 5)[:wire.ChunkHeaderSize-1]...)), []error{wire.ErrTruncatedHeader, io.ErrUnexpectedEOF}},
		{"header failing", io.MultiReader(bytes.NewReader(good[:10]), iotestErr(errNetwork)), []error{wire.ErrTruncatedHeader, errNetwork}},
		{"no data after the header", bytes.NewReader(chunkHeader(id, 5)), []error{wire.ErrTruncatedData, io.EOF}},
		{"data cut short", bytes.NewReader(append(chunkHeader(id, 5), "hell"...)), []error{wire.ErrTruncatedData, io.ErrUnexpectedEOF}},
		{"data failing", io.MultiReader(bytes.NewReader(append(chunkHeader(id, 5), 'h')), iotestErr(errNetwork)), []error{wire.ErrTruncatedData, errNetwork}},
		{"one byte over the limit", io.MultiReader(bytes.NewReader(chunkHeader(id, wire.MaxChunkSize+1)), failReader{t}), []error{wire.ErrTooLarge}},
		{"largest size a header holds", io.MultiReader(bytes.NewReader(chunkHeader(id, 1<<32-1)), failReader{t}), []error{wire.ErrTooLarge}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cr := wire.NewChunkFrameReader(c.body)
			var err error
			for err == nil {
				_, err = cr.Next()
			}
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want an error matching %q", err, w)
				}
			}
		})
	}
}

// A chunk of exactly MaxChunkSize is allowed: the frame below fails only
// because its data is missing.
func TestChunkFrameAtTheLimit(t *testing.T) {
	_, err := wire.NewChunkFrameReader(bytes.NewReader(chunkHeader(testID(1), wire.MaxChunkSize))).Next()
	if !errors.Is(err, wire.ErrTruncatedData) {
		t.Fatalf("got %v, want a truncated chunk", err)
	}
}

func TestChunkFrameErrorsNameTheProblem(t *testing.T) {
	id := testID(4)
	_, err := wire.NewChunkFrameReader(bytes.NewReader(chunkHeader(id, wire.MaxChunkSize+1))).Next()
	want := fmt.Sprintf("chunk %s of %d bytes is too large (the limit is %d)", id.Short(), wire.MaxChunkSize+1, wire.MaxChunkSize)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	_, err = wire.NewChunkFrameReader(bytes.NewReader(chunkHeader(id, 5))).Next()
	if want := "truncated chunk " + id.Short() + ": EOF"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func iotestErr(err error) io.Reader { return errReader{err} }

// loadStream writes frames for positions in the given order.
func loadStream(t *testing.T, order []int, data func(pos int) []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, pos := range order {
		if err := wire.WriteLoadFrame(&b, pos, data(pos)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestLoadFramesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 700
	sizes := chunkSizes(rng, n)
	data := func(pos int) []byte { return bytes.Repeat([]byte{byte(pos)}, sizes[pos]) }
	order := rng.Perm(n) // the server sends in the order it reads packs
	stream := loadStream(t, order, data)
	trailing := []byte("not for this batch")
	r := bytes.NewReader(append(stream, trailing...))

	var gotOrder []int
	err := wire.ReadLoadFrames(r, n, func(pos int, got []byte) error {
		if !bytes.Equal(got, data(pos)) {
			t.Fatalf("position %d: got %d bytes %x..., want %d bytes", pos, len(got), got[:min(len(got), 4)], sizes[pos])
		}
		gotOrder = append(gotOrder, pos)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gotOrder) != fmt.Sprint(order) {
		t.Fatal("positions were not reported in the order they came")
	}
	if r.Len() != len(trailing) {
		t.Fatalf("%d bytes left unread after the last frame, want %d", r.Len(), len(trailing))
	}
}

func TestLoadFramesOfNoIDsReadNothing(t *testing.T) {
	err := wire.ReadLoadFrames(failReader{t}, 0, func(int, []byte) error {
		t.Fatal("called for a request of no ids")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadFrameErrors(t *testing.T) {
	data := func(pos int) []byte { return []byte{byte(pos), 1, 2} }
	cases := []struct {
		name   string
		n      int
		stream []byte
		want   []error
	}{
		{"position equal to n", 3, loadStream(t, []int{0, 3}, data), []error{wire.ErrPositionOutOfRange}},
		{"position far out of range", 3, loadStream(t, []int{1 << 31}, data), []error{wire.ErrPositionOutOfRange}},
		{"largest position a header holds", 3, loadStream(t, []int{1<<32 - 1}, data), []error{wire.ErrPositionOutOfRange}},
		{"repeated position", 3, loadStream(t, []int{2, 0, 2}, data), []error{wire.ErrPositionRepeated}},
		{"missing positions", 3, loadStream(t, []int{2, 0}, data), []error{wire.ErrStreamEnded, io.EOF}},
		{"empty stream", 2, nil, []error{wire.ErrStreamEnded, io.EOF}},
		{"header cut", 3, loadStream(t, []int{2, 0, 1}, data)[:2*(wire.LoadHeaderSize+3)+5], []error{wire.ErrStreamEnded, io.ErrUnexpectedEOF}},
		{"data cut", 3, loadStream(t, []int{2, 0, 1}, data)[:2*(wire.LoadHeaderSize+3)+wire.LoadHeaderSize+1], []error{wire.ErrTruncatedData, io.ErrUnexpectedEOF}},
		{"data missing", 3, loadStream(t, []int{2, 0, 1}, data)[:wire.LoadHeaderSize], []error{wire.ErrTruncatedData, io.EOF}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := wire.ReadLoadFrames(bytes.NewReader(c.stream), c.n, func(int, []byte) error {
				calls++
				return nil
			})
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want an error matching %q", err, w)
				}
			}
			if calls >= c.n {
				t.Errorf("fn called %d times for a malformed stream of %d", calls, c.n)
			}
		})
	}
}

func TestLoadFramesFailingReader(t *testing.T) {
	stream := loadStream(t, []int{0}, func(int) []byte { return []byte("x") })
	err := wire.ReadLoadFrames(io.MultiReader(bytes.NewReader(stream), iotestErr(errNetwork)), 2, func(int, []byte) error { return nil })
	if !errors.Is(err, wire.ErrStreamEnded) || !errors.Is(err, errNetwork) {
		t.Fatalf("got %v, want the stream ended by the network error", err)
	}
	if want := "restore stream ended after 1 of 2 chunks: connection reset"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

func TestLoadFramesStopAtTheCallersError(t *testing.T) {
	stream := loadStream(t, []int{1, 0}, func(int) []byte { return []byte("x") })
	stop := errors.New("hash mismatch")
	calls := 0
	err := wire.ReadLoadFrames(bytes.NewReader(stream), 2, func(int, []byte) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("got %v after %d calls, want the caller's error itself after 1", err, calls)
	}
}

// failWriter fails only its write number failAt (from 0).
type failWriter struct{ writes, failAt int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes-1 == w.failAt {
		return 0, errNetwork
	}
	return len(p), nil
}

func TestWriteLoadFrameReportsWriteErrors(t *testing.T) {
	for failAt := range 2 { // the header's write, then the data's
		if err := wire.WriteLoadFrame(&failWriter{failAt: failAt}, 0, []byte("x")); !errors.Is(err, errNetwork) {
			t.Errorf("write %d failing: got %v, want its error", failAt+1, err)
		}
	}
}

// Frames of several MiB grow the reader's buffer in steps as their data
// arrives; what it reports must still be each frame's exact data.
func TestLoadFramesLargerThanTheBuffer(t *testing.T) {
	sizes := []int{3<<20 + 7, 0, 1, 5 << 20, 2<<20 + 1, 1 << 20}
	data := func(pos int) []byte {
		b := make([]byte, sizes[pos])
		rng := rand.New(rand.NewPCG(uint64(pos), 9))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	stream := loadStream(t, []int{0, 1, 2, 3, 4, 5}, data)
	err := wire.ReadLoadFrames(bytes.NewReader(stream), len(sizes), func(pos int, got []byte) error {
		if !bytes.Equal(got, data(pos)) {
			t.Errorf("position %d: got %d bytes, not the %d written", pos, len(got), sizes[pos])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A stream cut while the buffer grows is truncated, not ended cleanly,
// wherever the cut falls.
func TestLoadFrameCutWhileGrowing(t *testing.T) {
	stream := loadStream(t, []int{0}, func(int) []byte { return make([]byte, 3<<20) })
	for _, keep := range []int{1 << 20, 1<<20 + 1, 2<<20 + 5} {
		err := wire.ReadLoadFrames(bytes.NewReader(stream[:wire.LoadHeaderSize+keep]), 1, func(int, []byte) error { return nil })
		if !errors.Is(err, wire.ErrTruncatedData) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut after %d bytes of data: got %v, want a truncated chunk (unexpected EOF)", keep, err)
		}
	}
}

// A corrupt length must not make the reader allocate what it declares
// before any of it arrived.
func TestLoadFrameLengthIsNotTrusted(t *testing.T) {
	var hdr [wire.LoadHeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[4:], 1<<32-1)
	stream := append(hdr[:], "only ten b"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := wire.ReadLoadFrames(bytes.NewReader(stream), 1, func(int, []byte) error { return nil })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, wire.ErrTruncatedData) {
		t.Fatalf("got %v, want a truncated chunk", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("allocated %d bytes for 10 bytes of data declared as 4 GiB", alloc)
	}
}
