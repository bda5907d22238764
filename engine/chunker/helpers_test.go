package chunker

import (
	"encoding/binary"
	"io"
	"testing"
)

// pseudoRandom returns n deterministic bytes from splitmix64 seeded with seed.
// It is written out here rather than taken from math/rand so that the pinned
// test vectors cannot change with a Go release.
func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, (n+7)&^7)
	s := seed
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], splitmix64(&s))
	}
	return b[:n]
}

// textLike returns n deterministic bytes of lowercase words, spaces and
// newlines: low-entropy input, where gear hashes are less uniform than on
// random bytes.
func textLike(n int, seed uint64) []byte {
	s := seed
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+splitmix64(&s)%8)
		for j := range w {
			w[j] = 'a' + byte(splitmix64(&s)%26)
		}
		words[i] = w
	}
	out := make([]byte, 0, n+16)
	for len(out) < n {
		r := splitmix64(&s)
		out = append(out, words[r%uint64(len(words))]...)
		if r>>32%12 == 0 {
			out = append(out, '\n')
		} else {
			out = append(out, ' ')
		}
	}
	return out[:n]
}

// collect runs a CDC over r and returns copies of the chunks, checking that
// offsets are contiguous and Length matches Data.
func collect(t testing.TB, r io.Reader, p Params) []Chunk {
	t.Helper()
	c, err := NewCDC(r, p)
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, c)
}

func drain(t testing.TB, c *CDC) []Chunk {
	t.Helper()
	var out []Chunk
	var off int64
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Offset != off {
			t.Fatalf("chunk %d at offset %d, want %d", len(out), ch.Offset, off)
		}
		if ch.Length != len(ch.Data) || ch.Hole {
			t.Fatalf("chunk %d: Length %d, len(Data) %d, Hole %v", len(out), ch.Length, len(ch.Data), ch.Hole)
		}
		off += int64(ch.Length)
		ch.Data = append([]byte(nil), ch.Data...)
		out = append(out, ch)
	}
}

func ends(chunks []Chunk) []int {
	out := make([]int, len(chunks))
	for i, c := range chunks {
		out[i] = int(c.Offset) + c.Length
	}
	return out
}
