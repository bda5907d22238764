package chunker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

func TestValidateBlockSize(t *testing.T) {
	for _, bs := range []int{4 << 10, 64 << 10, DefaultBlockSize, 64 << 20} {
		if err := ValidateBlockSize(bs); err != nil {
			t.Errorf("%d: %v", bs, err)
		}
	}
	for _, bs := range []int{0, -4096, 512, 2 << 10, 4<<10 + 1, 3 << 20, 128 << 20} {
		if err := ValidateBlockSize(bs); err == nil {
			t.Errorf("%d accepted", bs)
		}
		if _, err := NewFixed(bytes.NewReader(nil), 0, bs); err == nil {
			t.Errorf("NewFixed with block size %d accepted", bs)
		}
	}
}

func TestIsZero(t *testing.T) {
	buf := make([]byte, 3*len(zeroBlock)+77)
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 4096, len(zeroBlock), len(zeroBlock) + 1, len(buf)} {
		for _, start := range []int{0, 1, 3} {
			if start+n > len(buf) {
				continue
			}
			b := buf[start : start+n]
			if !IsZero(b) {
				t.Fatalf("zero slice of %d bytes at %d reported non-zero", n, start)
			}
			// A single set bit anywhere must be found: first, last, at
			// word and piece boundaries.
			for _, i := range []int{0, 1, 7, 8, n / 2, len(zeroBlock) - 1, len(zeroBlock), n - 1} {
				if i < 0 || i >= n {
					continue
				}
				b[i] = 0x80
				if IsZero(b) {
					t.Fatalf("byte %d of %d set, reported zero", i, n)
				}
				b[i] = 0
			}
		}
	}
}

// image builds a device image of blocks of bs bytes following pattern:
// 'd' random data, 'z' zeros, 'e' zeros except the last byte, 's' zeros except
// the first; then a partial block of tail bytes (data or zero as tailKind).
func image(bs int, pattern string, tail int, tailKind byte) []byte {
	var out []byte
	for i, k := range []byte(pattern + string(tailKind)) {
		n := bs
		if i == len(pattern) {
			n = tail
		}
		b := make([]byte, n)
		switch k {
		case 'd':
			b = pseudoRandom(n, uint64(i+1))
		case 'e':
			if n > 0 {
				b[n-1] = 1
			}
		case 's':
			if n > 0 {
				b[0] = 1
			}
		}
		out = append(out, b...)
	}
	return out
}

func drainFixed(t *testing.T, f *Fixed) []Chunk {
	t.Helper()
	var out []Chunk
	for {
		c, err := f.Next()
		if err == io.EOF {
			if _, err := f.Next(); err != io.EOF {
				t.Fatalf("Next after io.EOF: %v", err)
			}
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Hole && c.Data != nil || !c.Hole && len(c.Data) != c.Length {
			t.Fatalf("chunk at %d: Hole %v, Length %d, len(Data) %d", c.Offset, c.Hole, c.Length, len(c.Data))
		}
		c.Data = append([]byte(nil), c.Data...)
		out = append(out, c)
	}
}

func TestFixedWholeDevice(t *testing.T) {
	const bs = 4 << 10
	for _, tc := range []struct {
		pattern  string
		tail     int
		tailKind byte
	}{
		{"dzdzzesd", 0, 'd'},
		{"zzzz", 1000, 'd'},
		{"dddd", 1000, 'z'},
		{"", 17, 'd'},
		{"", 0, 'z'},
		{"zd", 1, 'e'},
	} {
		t.Run(fmt.Sprintf("%s+%d%c", tc.pattern, tc.tail, tc.tailKind), func(t *testing.T) {
			img := image(bs, tc.pattern, tc.tail, tc.tailKind)
			f, err := NewFixed(bytes.NewReader(img), int64(len(img)), bs)
			if err != nil {
				t.Fatal(err)
			}
			chunks := drainFixed(t, f)
			if want := (len(img) + bs - 1) / bs; len(chunks) != want {
				t.Fatalf("%d chunks for %d bytes, want %d", len(chunks), len(img), want)
			}
			for i, c := range chunks {
				if c.Offset != int64(i*bs) {
					t.Fatalf("chunk %d at %d, want %d", i, c.Offset, i*bs)
				}
				want := img[c.Offset:min(int(c.Offset)+bs, len(img))]
				if c.Length != len(want) {
					t.Fatalf("chunk %d has length %d, want %d", i, c.Length, len(want))
				}
				kind := tc.tailKind
				if i < len(tc.pattern) {
					kind = tc.pattern[i]
				}
				if (kind == 'z') != c.Hole {
					t.Fatalf("chunk %d (%c): Hole = %v", i, kind, c.Hole)
				}
				if !c.Hole && !bytes.Equal(c.Data, want) {
					t.Fatalf("chunk %d: data differs from the image", i)
				}
			}
		})
	}
}

func TestAlignExtents(t *testing.T) {
	const bs = 4096
	size := int64(10*bs + 100) // the last block is partial
	for _, tc := range []struct {
		name string
		in   []Extent
		want []Extent
	}{
		{"nothing", nil, []Extent{}},
		{"empty extents dropped", []Extent{{5000, 0}, {0, 0}}, []Extent{}},
		{"rounded out", []Extent{{5000, 10}}, []Extent{{4096, 4096}}},
		{"exact block", []Extent{{8192, 4096}}, []Extent{{8192, 4096}}},
		{"straddles two blocks", []Extent{{8000, 200}}, []Extent{{4096, 8192}}},
		{"overlapping merged", []Extent{{0, 5000}, {4000, 5000}}, []Extent{{0, 12288}}},
		{"touching after rounding merged", []Extent{{100, 10}, {4196, 10}}, []Extent{{0, 8192}}},
		{"same block twice", []Extent{{10, 1}, {20, 1}}, []Extent{{0, 4096}}},
		{"unsorted", []Extent{{9 * bs, 1}, {0, 1}, {5 * bs, 1}}, []Extent{{0, bs}, {5 * bs, bs}, {9 * bs, bs}}},
		{"contained", []Extent{{0, 8 * bs}, {bs, 10}}, []Extent{{0, 8 * bs}}},
		{"partial last block", []Extent{{10*bs + 50, 1}}, []Extent{{10 * bs, 100}}},
		{"clipped at the end", []Extent{{9 * bs, 1 << 40}}, []Extent{{9 * bs, bs + 100}}},
		{"past the end dropped", []Extent{{size, 10}, {size + 5*bs, 1}}, []Extent{}},
		{"length overflowing int64", []Extent{{bs, 1<<63 - 1}}, []Extent{{bs, size - bs}}},
	} {
		got, err := AlignExtents(tc.in, size, bs)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: AlignExtents(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	for _, bad := range [][]Extent{{{-1, 10}}, {{0, -1}}} {
		if _, err := AlignExtents(bad, size, bs); err == nil {
			t.Errorf("AlignExtents(%v) accepted", bad)
		}
	}
	if _, err := AlignExtents(nil, -1, bs); err == nil {
		t.Error("negative size accepted")
	}
}

func TestFixedExtents(t *testing.T) {
	const bs = 8 << 10
	img := image(bs, "dzdddzdd", 3000, 'd') // 9 blocks, the last partial
	size := int64(len(img))
	// Changed-block tracking style ranges: unaligned, unsorted, overlapping,
	// one of them in a zero block and one in the partial last block.
	ext := []Extent{{6*bs + 100, 5}, {2*bs + 10, bs}, {2*bs + 500, 20}, {bs + 1, 1}, {8*bs + 2999, 1}}
	f, err := NewFixedExtents(bytes.NewReader(img), size, bs, ext)
	if err != nil {
		t.Fatal(err)
	}
	chunks := drainFixed(t, f)
	type blk struct {
		off  int64
		n    int
		hole bool
	}
	want := []blk{{bs, bs, true}, {2 * bs, bs, false}, {3 * bs, bs, false}, {6 * bs, bs, false}, {8 * bs, 3000, false}}
	if len(chunks) != len(want) {
		t.Fatalf("%d chunks, want %d", len(chunks), len(want))
	}
	for i, c := range chunks {
		if w := want[i]; c.Offset != w.off || c.Length != w.n || c.Hole != w.hole {
			t.Errorf("chunk %d = {%d %d hole=%v}, want {%d %d hole=%v}", i, c.Offset, c.Length, c.Hole, w.off, w.n, w.hole)
		}
		if !c.Hole && !bytes.Equal(c.Data, img[c.Offset:c.Offset+int64(c.Length)]) {
			t.Errorf("chunk %d: data differs from the image", i)
		}
	}

	// No extents: nothing changed, nothing to read.
	f, err = NewFixedExtents(failingReaderAt{}, size, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.Next(); err != io.EOF {
		t.Fatalf("no extents: %+v, %v", c, err)
	}
}

type failingReaderAt struct{}

var errDevice = errors.New("device gone")

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errDevice }

// atEOFReaderAt reports io.EOF together with a complete read of the last
// bytes, which io.ReaderAt allows.
type atEOFReaderAt struct{ b []byte }

func (r atEOFReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, r.b[off:])
	if off+int64(n) == int64(len(r.b)) {
		return n, io.EOF
	}
	return n, nil
}

func TestFixedReadErrors(t *testing.T) {
	const bs = 4 << 10
	img := image(bs, "dd", 100, 'd')

	// A full read with io.EOF is fine.
	f, _ := NewFixed(atEOFReaderAt{img}, int64(len(img)), bs)
	if n := len(drainFixed(t, f)); n != 3 {
		t.Fatalf("%d chunks, want 3", n)
	}

	// A device shorter than its declared size is an error, not a hole.
	f, _ = NewFixed(bytes.NewReader(img), int64(len(img))+bs, bs)
	var err error
	for err == nil {
		_, err = f.Next()
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short device: %v, want io.ErrUnexpectedEOF", err)
	}

	f, _ = NewFixed(failingReaderAt{}, 1<<20, bs)
	for range 2 {
		if _, err := f.Next(); !errors.Is(err, errDevice) {
			t.Fatalf("failing device: %v", err)
		}
	}
}
