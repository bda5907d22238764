package chunker

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"testing"
)

// candidateParams are the parameter sets compared in the package
// documentation; the benchmarks report each so the table can be re-measured.
var candidateParams = []Params{
	{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20},
	{Min: 128 << 10, Avg: 512 << 10, Max: 2 << 20},
	{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20},
	{Min: 128 << 10, Avg: 1 << 20, Max: 8 << 20},
	{Min: 512 << 10, Avg: 2 << 20, Max: 8 << 20},
	{Min: 1 << 20, Avg: 4 << 20, Max: 16 << 20},
}

func benchName(p Params) string {
	return fmt.Sprintf("min=%s/avg=%s/max=%s", sizeString(p.Min), sizeString(p.Avg), sizeString(p.Max))
}

// BenchmarkCDC measures streaming chunking of 64 MiB of random bytes, which
// are hashed almost entirely (no long runs that hit Max).
func BenchmarkCDC(b *testing.B) {
	data := pseudoRandom(64<<20, 1)
	for _, p := range candidateParams {
		b.Run(benchName(p), func(b *testing.B) {
			c, err := NewCDC(nil, p)
			if err != nil {
				b.Fatal(err)
			}
			r := bytes.NewReader(data)
			c.Reset(r)
			if _, err := c.Next(); err != nil { // allocates the buffer once
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			chunks := 0
			for b.Loop() {
				r.Reset(data)
				c.Reset(r)
				for {
					_, err := c.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					chunks++
				}
			}
			b.ReportMetric(float64(len(data))*float64(b.N)/float64(chunks), "B/chunk")
		})
	}
}

// BenchmarkCuts measures the in-memory, zero-copy path.
func BenchmarkCuts(b *testing.B) {
	data := pseudoRandom(64<<20, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Cuts(data, DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFixed measures fixed-size chunking of a 256 MiB in-memory image
// of 1 MiB blocks: all data, all zeros (every block fully scanned, then
// reported as a hole), and a mix like a thin-provisioned disk.
func BenchmarkFixed(b *testing.B) {
	const size = 256 << 20
	random := pseudoRandom(size, 3)
	mixed := slices.Clone(random)
	for off := 0; off < size; off += 3 * DefaultBlockSize {
		clear(mixed[off : off+DefaultBlockSize])
	}
	for _, tc := range []struct {
		name string
		img  []byte
	}{{"data", random}, {"zero", make([]byte, size)}, {"mixed", mixed}} {
		b.Run(tc.name, func(b *testing.B) {
			r := bytes.NewReader(tc.img)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				f, err := NewFixed(r, size, DefaultBlockSize)
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := f.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkIsZero measures the hole check alone on a zero block, its worst
// case.
func BenchmarkIsZero(b *testing.B) {
	block := make([]byte, DefaultBlockSize)
	b.SetBytes(int64(len(block)))
	for b.Loop() {
		if !IsZero(block) {
			b.Fatal("zero block reported non-zero")
		}
	}
}
