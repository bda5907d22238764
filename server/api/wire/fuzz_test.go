package wire_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
)

// FuzzChunkFrameReader feeds arbitrary upload bodies to the reader: it
// must never panic, and whatever it accepts must encode back to the same
// bytes (so it neither skips nor invents any).
func FuzzChunkFrameReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(wire.AppendChunkFrame(nil, format.Data, testID(1), []byte("hello")))
	f.Add(wire.AppendChunkFrame(wire.AppendChunkFrame(nil, format.Tree, testID(2), nil), format.Root, testID(3), []byte("{}")))
	f.Add(chunkHeader(testID(4), wire.MaxChunkSize+1))
	f.Add(chunkHeader(testID(5), 9)[:20])
	f.Fuzz(func(t *testing.T, body []byte) {
		cr := wire.NewChunkFrameReader(bytes.NewReader(body))
		var again []byte
		for {
			c, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, wire.ErrTruncatedHeader) && !errors.Is(err, wire.ErrTruncatedData) && !errors.Is(err, wire.ErrTooLarge) {
					t.Fatalf("unclassified error %v", err)
				}
				return
			}
			again = wire.AppendChunkFrame(again, c.Type, c.ID, c.Data)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("accepted %x but it encodes back to %x", body, again)
		}
	})
}

// FuzzReadLoadFrames feeds arbitrary restore streams to the reader, for
// requests of up to 7 ids: it must never panic, and when it succeeds it
// reported every position exactly once.
func FuzzReadLoadFrames(f *testing.F) {
	frame := func(b []byte, pos int, data string) []byte {
		var w bytes.Buffer
		_ = wire.WriteLoadFrame(&w, pos, []byte(data))
		return append(b, w.Bytes()...)
	}
	f.Add(byte(0), []byte{})
	f.Add(byte(2), frame(frame(nil, 1, "b"), 0, ""))
	f.Add(byte(2), frame(frame(nil, 1, "b"), 1, "b"))
	f.Add(byte(1), frame(nil, 1, "a"))
	f.Add(byte(3), frame(nil, 2, "abc")[:9])
	f.Fuzz(func(t *testing.T, ids byte, stream []byte) {
		n := int(ids % 8)
		seen := make([]bool, n)
		err := wire.ReadLoadFrames(bytes.NewReader(stream), n, func(pos int, _ []byte) error {
			if pos < 0 || pos >= n || seen[pos] {
				t.Fatalf("position %d reported for %d ids (seen before: %v)", pos, n, pos >= 0 && pos < n && seen[pos])
			}
			seen[pos] = true
			return nil
		})
		if err != nil {
			return
		}
		for pos, ok := range seen {
			if !ok {
				t.Fatalf("succeeded without position %d", pos)
			}
		}
	})
}
