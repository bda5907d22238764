package format

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// chunkOf returns size bytes of one of two kinds of content: "random"
// (stored raw: the entropy test skips it) or "text" (stored as zstd).
func chunkOf(kind string, size int, seed uint64) []byte {
	rng := mrand.New(mrand.NewPCG(seed, 0x5eed))
	b := make([]byte, size)
	switch kind {
	case "random":
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case "text":
		words := []string{"backup ", "restore ", "chunk ", "pack ", "index ", "point ", "haven ", "\n"}
		for i := 0; i < size; {
			i += copy(b[i:], words[rng.IntN(len(words))])
		}
	}
	return b
}

func testSealer(tb testing.TB) *Sealer {
	var key [32]byte
	key[0] = 1
	s, err := NewSealer(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// BenchmarkOpen measures opening one sealed 1 MiB chunk the way a restore
// does, reusing its destination; allocs/op is the per-chunk garbage.
func BenchmarkOpen(b *testing.B) {
	s := testSealer(b)
	h := NewHasher([32]byte{2})
	for _, kind := range []string{"random", "text"} {
		plain := chunkOf(kind, 1<<20, 1)
		id := h.Sum(plain)
		blob, _ := s.Seal(nil, id, plain, nil)
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			var dst []byte
			for b.Loop() {
				var err error
				if dst, err = s.Open(dst[:0], id, blob); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHasherSum measures naming one chunk; allocs/op is the
// per-chunk garbage of the keyed hasher.
func BenchmarkHasherSum(b *testing.B) {
	h := NewHasher([32]byte{2})
	for _, size := range []int{16 << 10, 1 << 20} {
		data := chunkOf("random", size, 3)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				_ = h.Sum(data)
			}
		})
	}
}
