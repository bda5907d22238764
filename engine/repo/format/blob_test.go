package format

import (
	"bytes"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/zeebo/blake3"
)

// Blobs and ids written by Haven before Open and Hasher.Sum reused their
// buffers and hashers (sealed with testSealer, hashed with key {2}): every
// later version must read and name them the same way.
var golden = []struct {
	kind, id, blob string
}{
	{"random", "90b5799fb5244a2e8f2dc44a7c5ba37a51341d5ccbd689b661fc26561d010b53",
		"f2d54550fdee5c5fdece68cee32f88c9c25960c54f32cb71b9e297cf4232e419c31ccaf7cce17ec5593458c7383e8ed8" +
			"c181b1174275ee190cdb835f6b319936dd92d465d0b282e0aaefa1c5592759ea5fcce8335c97e13211fdb88cfe216312" +
			"36b9e7b3efd8812c185760b3ffd4f552fa35b51ee138cc4195306500a658b727669ed441df8a0f34e77aeadc4d368ac4" +
			"362f261cfb17ed2bf57dc27c430258fd6b5a2c609f4e5103293166ea285b4d6ca69cbd62de2fd85f6e6e910a1191f3b3" +
			"63f51b28f7ced50ae1e379cf6543bd5906e39ace24a7bc0a3f68b387464018229c8dbd1b75b27048a37b5eecd798cf1e" +
			"93001a139f639623e3f4782155799f31833e35e9119828b2dbee5c57c1c722d7a8314cd906334d8233b4bdc6645d9721" +
			"e4def948c867dd677067b088802f26d16dba563e43a84e80bbeca538556cccd554bee2ba1601d67f837482a28abd7985" +
			"871bff2a25c4a325291d833910de4a00cec55e80305c85342091e8e5a6ddbcceaad31ef7f12f1df72c1a88f050323ba1" +
			"bef9ea916b1bf6017bf4a0807888af82a7b2f94bcc303c000bf2756b6f6045e6d8deed299155aaae031ba8d34dd63d03" +
			"14ad77d0dfc88df35b8c3bf0e04bc89352747d422f79860e90a4a046b070140278510604fbaff580fed6751fdd96b463" +
			"70924cb6283d339c91121434dd51db7ca24f9f7b534c2d4cee2347a94462cc85f995d688333447f7df2d265a78f108f1" +
			"39528c5d2046be6a175228a6fe98e19f04b861caf06b7b08b8eaeb5def0317f19f1f2b6c78e449d15d7201f334fbc5b3" +
			"9a59d59506040142c45e3eceb0feee3dad4b6164a15fffd6e6cecfc6e96162e468a6ddfcae60ef4baa3fb16f1ea40819" +
			"dc0310ee68"},
	{"text", "8bed912d618101b112b00eff9221efe5b083f6687579bb6c52646ca9f49c68e2",
		"a7ae5b587afaa2327d4e6890398504bd2303461a3d50ac00a4df923b5970a477d7ba44a4bf1530313d173ada81fb541b" +
			"e105781ea9e86b0145cb8610f3e5f955fba20674ea98d6eb502d59abbe067c9b5828d3b2f269431de4328cdfa200bcea" +
			"685b6f5ad8583d320dd6d2eebe10ec992f68d457ac8e5100eafc6d92b5de33f3dd5b891d86034cd47954818a17766ede" +
			"e8aa864fbf7d5a59d2ff3c873003de7577ccaebfbbe8e4500cdff76f0f6849b01c8f42faa3d151509a1fd756943b4cbf" +
			"2d636ef87553dc05004a2fe3e70458f5a99ddfc4664c01b5fbb4acfd2f724b92cec3f0f7e66f92f91c4ab5270a"},
}

func TestOpenReadsGoldenBlobs(t *testing.T) {
	s := testSealer(t)
	h := NewHasher([32]byte{2})
	for _, g := range golden {
		want := chunkOf(g.kind, 600, 7)
		id, err := ParseID(g.id)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := hex.DecodeString(g.blob)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Sum(want); got != id {
			t.Errorf("%s: Sum = %s, want %s", g.kind, got, id)
		}
		plain, err := s.Open(nil, id, blob)
		if err != nil || !bytes.Equal(plain, want) {
			t.Errorf("%s: Open = %d bytes, %v; want the %d golden bytes", g.kind, len(plain), err, len(want))
		}
		plain, _, err = s.OpenInPlace(nil, id, bytes.Clone(blob))
		if err != nil || !bytes.Equal(plain, want) {
			t.Errorf("%s: OpenInPlace = %d bytes, %v; want the %d golden bytes", g.kind, len(plain), err, len(want))
		}
	}
}

// TestOpenResultOwnsItsBytes opens chunks one after another with a nil
// dst, as LoadChunk's callers and verify may, and checks that an earlier
// result is not changed by a later Open: Open decrypts into a pooled
// buffer, and handing that buffer out would let the next chunk overwrite
// bytes a caller still holds.
func TestOpenResultOwnsItsBytes(t *testing.T) {
	s := testSealer(t)
	h := NewHasher([32]byte{2})
	for _, kind := range []string{"random", "text"} {
		var kept [][]byte
		var want [][]byte
		for n := range 4 {
			p := chunkOf(kind, 64<<10, uint64(n+10))
			id := h.Sum(p)
			blob, _ := s.Seal(nil, id, p, nil)
			sealed := bytes.Clone(blob)
			got, err := s.Open(nil, id, blob)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(blob, sealed) {
				t.Fatalf("%s chunk %d: Open changed the blob it was given", kind, n)
			}
			kept = append(kept, got)
			want = append(want, p)
		}
		for n := range kept {
			if !bytes.Equal(kept[n], want[n]) {
				t.Errorf("%s chunk %d: a later Open changed an earlier result", kind, n)
			}
		}
	}
}

// TestOpenInPlaceAcrossOneRun opens blobs lying side by side in one
// buffer, as a restore's ranged read holds them, reusing the decode
// buffer: each result is whole, and appending to a raw result (which lies
// in the run's buffer) does not overwrite the blob after it.
func TestOpenInPlaceAcrossOneRun(t *testing.T) {
	s := testSealer(t)
	h := NewHasher([32]byte{2})
	var run []byte
	var ids []ID
	var plains [][]byte
	var offs []int
	for n, kind := range []string{"random", "text", "random", "text", "random"} {
		p := chunkOf(kind, 32<<10, uint64(n+20))
		id := h.Sum(p)
		offs = append(offs, len(run))
		run, _ = s.Seal(run, id, p, nil)
		ids, plains = append(ids, id), append(plains, p)
	}
	offs = append(offs, len(run))
	var scratch []byte
	for n := range ids {
		var plain []byte
		var err error
		plain, scratch, err = s.OpenInPlace(scratch[:0], ids[n], run[offs[n]:offs[n+1]])
		if err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
		if !bytes.Equal(plain, plains[n]) {
			t.Fatalf("chunk %d: wrong plaintext", n)
		}
		_ = append(plain, make([]byte, 64)...)
	}
	if _, _, err := s.OpenInPlace(nil, ids[1], run[offs[2]:offs[3]]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a blob opened under another id: %v, want ErrCorrupt", err)
	}
}

// TestSumMatchesAFreshKeyedHasher checks that reused hashers name chunks
// exactly as a newly keyed BLAKE3 does, whatever was hashed before and
// from however many goroutines.
func TestSumMatchesAFreshKeyedHasher(t *testing.T) {
	key := [32]byte{9, 8, 7}
	h := NewHasher(key)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n, size := range []int{0, 1, 1023, 1024, 1025, 8 << 10, 100 << 10, 3} {
				data := chunkOf("random", size, uint64(g*100+n))
				fresh, _ := blake3.NewKeyed(key[:])
				fresh.Write(data)
				var want ID
				copy(want[:], fresh.Sum(nil))
				if got := h.Sum(data); got != want {
					t.Errorf("goroutine %d, %d bytes: Sum = %s, want %s", g, size, got.Short(), want.Short())
				}
			}
		}()
	}
	wg.Wait()
}
