package format

import (
	"bytes"
	"fmt"
	"testing"
)

// TestCodecsReadEachOther checks that a frame written by either codec is
// decoded by both to the same bytes: a repository written by a cgo build
// must be read by a pure-Go one (a cross-compiled agent, a CGO_ENABLED=0
// release) and the other way round.
func TestCodecsReadEachOther(t *testing.T) {
	codecs := map[string]zstdCodec{"native": nativeZstd, "go": goZstd}
	inputs := map[string][]byte{
		"text 600 B":  chunkOf("text", 600, 1),
		"text 1 MiB":  chunkOf("text", 1<<20, 2),
		"text 8 MiB":  chunkOf("text", 8<<20, 3),
		"random 64 K": chunkOf("random", 64<<10, 4),
		"zeros 1 MiB": make([]byte, 1<<20),
	}
	for name, in := range inputs {
		for wname, w := range codecs {
			frame := w.compress([]byte("kept"), in)
			if !bytes.HasPrefix(frame, []byte("kept")) {
				t.Fatalf("%s by %s: compress did not append to dst", name, wname)
			}
			for rname, r := range codecs {
				out, err := r.decode([]byte("head"), frame[4:])
				if err != nil || !bytes.Equal(out[4:], in) || string(out[:4]) != "head" {
					t.Errorf("%s written by %s, read by %s: %d bytes, %v", name, wname, rname, len(out), err)
				}
			}
		}
	}
}

// TestCodecsRefuseCorruptFrames checks that a damaged frame is an error
// from both codecs, never a panic or wrong bytes taken as right.
func TestCodecsRefuseCorruptFrames(t *testing.T) {
	in := chunkOf("text", 256<<10, 5)
	for wname, w := range map[string]zstdCodec{"native": nativeZstd, "go": goZstd} {
		frame := w.compress(nil, in)
		for _, cut := range []int{1, 5, len(frame) / 2, len(frame) - 1} {
			for rname, r := range map[string]zstdCodec{"native": nativeZstd, "go": goZstd} {
				out, err := r.decode(nil, frame[:cut])
				if err == nil && bytes.Equal(out, in) {
					t.Errorf("%s frame cut to %d bytes decoded by %s to the whole input", wname, cut, rname)
				}
				if err == nil && cut < len(frame)/2 {
					t.Errorf("%s frame cut to %d bytes: %s decoded %d bytes without an error", wname, cut, rname, len(out))
				}
			}
		}
	}
}

// BenchmarkCompress compares the codecs on text-like chunks of the
// average chunk size, the data compression is spent on in a backup.
func BenchmarkCompress(b *testing.B) {
	in := chunkOf("text", 1<<20, 6)
	for _, c := range []struct {
		name  string
		codec zstdCodec
	}{{"native", nativeZstd}, {"go", goZstd}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			var dst []byte
			for b.Loop() {
				dst = c.codec.compress(dst[:0], in)
			}
			b.ReportMetric(float64(len(dst))/float64(len(in)), "ratio")
		})
	}
}

func ExampleCompress() {
	in := bytes.Repeat([]byte("haven "), 1000)
	out, err := goZstd.decode(nil, Compress(nil, in))
	fmt.Println(len(in), bytes.Equal(out, in), err)
	// Output: 6000 true <nil>
}
