package format

import (
	"bytes"
	"encoding/hex"
	"os"
	"testing"
)

// countingNonces is a nonce source that gives the same bytes on every
// run, so that a pack sealed with it can be compared with a golden one.
type countingNonces struct{ n byte }

func (c *countingNonces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// withFixedNonces makes every seal in fn draw its nonces from a fresh
// countingNonces, and compress with the pure-Go codec the golden bytes
// were written with: the frames of another zstd encoder are as valid (see
// TestCodecsReadEachOther) but not the same bytes.
func withFixedNonces(t *testing.T, fn func()) {
	t.Helper()
	saved, savedZstd := nonces, blobZstd
	nonces, blobZstd = &countingNonces{}, goZstd
	defer func() { nonces, blobZstd = saved, savedZstd }()
	fn()
}

// goldenPackChunks are the chunks of the golden pack, in order: raw and
// compressed, below the compression threshold, and of each type.
func goldenPackChunks() []struct {
	t    Type
	data []byte
} {
	return []struct {
		t    Type
		data []byte
	}{
		{Data, chunkOf("random", 600, 7)},
		{Data, chunkOf("text", 600, 7)},
		{Tree, chunkOf("text", 3000, 8)},
		{Root, chunkOf("random", 100, 9)},
	}
}

// goldenPack is a whole pack (blobs, sealed trailer, footer) as Haven
// wrote it before the writer sealed chunks straight into the pack, with
// testSealer, ids from key {2}, and countingNonces.
const goldenPack = "" +
	"000102030405060708090a0bac8722e8fcef0324c337edd67d545ce7f4f23a261f981ee9f33210633220622d5c63e3ec" +
	"b50f4be006a273f6b129113b0303a0c04654164dc488abbb787bef770917a8726006e4759a4c4460d9f542a5cb6a0031" +
	"c73ba824e33c4fb2658678c941747157b07b17944440f51b32c8475ac6ccaf7030b0e58821fd3321b41a775f80a3874d" +
	"d5c629a59164c457ed2b61f013ce2c82ec1cce4b8eee3c71de723f51442ac1acdfcb6db6671fb79cd272c63a81d5c13f" +
	"b522469f6cfc885b0e475ca42bc87723758d3bac85695f0b2c05b405113704af2ca8394dcb3970e31d10861b7663dfdb" +
	"3c62e59979c353d735d4665d75547ad48de6c937fc0f5558ab3ada1f128a2009c094372fa02d701ad37745007a582cb1" +
	"32616b603f43b2f6d7c66be90c6f5f5deca5040eab486a7ecd15200c875b064bf258153ecd3f4621263b71da2a4bd051" +
	"b90d3dac01419b94bc1e15efc66e710f4384cd924fd943c59a3d035937cf25063cd4fc89eb7d76232e2ef0d2511d6157" +
	"3c2f51fe9d3b50753fab5d9342688b979572e15800f8f4e0b1b729bad50f177443ea4f2fd1ae97e1c4efcbc9305bfcad" +
	"2726f8b8c383abb425c9d81e1229fa07bf1fdb6bc5fb9a4e8446e533a6f93a4aa743e6afc38d6648822d4c3b1c26ef6b" +
	"794af057a76f2551b5ff609aa3774bdd7f3df1fac85d2a72668388036e369a5ce27d1d87bb1cf9c4442056ac53a039f6" +
	"dcde568302790fd6b6beec7dfb2d8217b15d6a0ee041adc1ada180cc268311660872adf2ba2eb40b4dc40888b73bfef5" +
	"f7f09883e2a00186ca2c01f7df05dc5685f72ee80aea436dbdbc07fb8bb2e51d33acefffa81455203bc18388cbd4d10d" +
	"13ad010b0f0c0d0e0f101112131415161780e30e7155ec864bc0ebd9d0e79a91b54cc9ecbd635f269e38be7521d830e9" +
	"3db6309d1436efb4cb01591613696357ad1cc4ef227df469a9a8de6b5158f0f17cc0fb919afcc92f9724d8d5a9c29fd1" +
	"bf094a8149ace6d0093600f8bf23b186dc98051d0e3408b86c5df1afa0aefad099566f9a384e7eff0c6920a1de3afb76" +
	"c32a00bad9c99806897601a9885eae19b6e0ce4ac7c00dcc78f8d92546dbc747776bfb11b7d3498b4ccf6c62eece8241" +
	"fca666eb9dc36b185c257010e84c660ce80de4b34a533decf9ad4f52351bf1eb5048386cf02e80b8ea5bf64b5cbcc41d" +
	"eab618191a1b1c1d1e1f20212223b43806fd4f943d4a759ae6e780ec0ccf518518dca8ed1acebdae79eb25a970d422d3" +
	"1fac41c7d4f8c3be8022023555deca6b243f5dfc8f8d320b7d927007a198815a0a8f336ff7855044767ada775e0d7460" +
	"042f82a756c5385b12039b7e438c6dd9f7a4e1f91d613cf5124955d7656da2536099d5e0303b614b936ed5c50578840a" +
	"0070633f9e3dae9c4b2b04d48aeb4cad71dac0ec9891f3be90ed8c7e9efaefac51aae73c6df0f5eef933b1dbff930ebe" +
	"f083c4f54b12900e3ab943ed6115d2939cf0171c9cff48d0b9e9286675919551377afeec022d189f3a74307052b64a36" +
	"eca44c65208e7145b6f1a3ed31698ff2d24782a55e09dfed0025e24b6eb72fc89efa678df88f0d7cc6b96886c3deb66a" +
	"751d635d4f8aae689d5bccc7a02f3ef944ea590d650dfb0f2836261d0478ce8986f87a1290721a1dc5f38bb996a79a04" +
	"2cca0edb9db6756f2badb33f6a006a3f6b215da31ae798ea3021c4aeff72d44fd5d897fff7fe1ba07f5c5538d2ec68c6" +
	"391332f1304e3d3a91f46de0a57705dbb6100086f32661cd04523fdcd595973ac2f3ca9d5e4369818b8a0129bab046c6" +
	"8bfc4bc2b64faa70c576737f0cf3c6a8ed9aa7e7f4fd45b04780e9e9e3b04458a077273f6eba920b17a88e19012ea509" +
	"5f8733ba7dcb18bf0893419c8e0ad7f31d42e8cf9ef26609e5fe8d0057d5163c25a0a7106a4bea990abf7e6c72475e66" +
	"6fc26d77579e0f5b6af657d1f6f7c063049b3d1e01749a5b1b6c877c4bd5e5c0905a971bc4ee5172fc251572cfce4494" +
	"56a35a3970388578e05b64729fa3e43a9332d3b796b66686cbc26cbddb2425262728292a2b2c2d2e2fa180f1260ff061" +
	"1d4e8dbb489c21cb96f043f9a3424c4cde46222f075c23e821c429d3091833ff4c51477ba6f568cde00647b223c8aaec" +
	"7d781f7a226eba41fb9f2d965915c4dd447e7c02e632e8a785a69fd9579bf9bf99e2d9727f0872bca0cbea14f9517bd3" +
	"2df0990b3b340d8327a133c6f92e303132333435363738393a3bd56d432494b88e10e676341ea64e53d3c3951df474b4" +
	"1a12b8779cc8a3265cab97f3b18b9722f5c7e0f0dff0c976a9990a88f344a4251634473b061a67ded4fdfe4c93396cd5" +
	"6882221b820066da786f07863e2d325252410cbc05ed22447fa88fd690af75fe65b60cc85e6614a21038de7094809d7b" +
	"96abea8d952a87013dee68a0499782ceb42d8c423de4b71f105f1354586b31c8bd06cb3623ffea240386c7492f82cfc3" +
	"0f09d4e52d61b800000048564e5041434b31"

// buildPackWithAdd seals the golden chunks through PackBuilder.Add.
func buildPackWithAdd(s *Sealer, h *Hasher) []byte {
	p := NewPackBuilder(0)
	for _, c := range goldenPackChunks() {
		p.Add(s, h.Sum(c.data), c.t, c.data, nil)
	}
	return p.Finish(s)
}

// TestPackMatchesGolden checks that a pack is sealed byte for byte as
// before; a change here is a repository format change.
func TestPackMatchesGolden(t *testing.T) {
	s := testSealer(t)
	h := NewHasher([32]byte{2})
	var got []byte
	withFixedNonces(t, func() { got = buildPackWithAdd(s, h) })
	if os.Getenv("HAVEN_PRINT_GOLDEN_PACK") != "" {
		t.Logf("pack: %s", hex.EncodeToString(got))
	}
	want, err := hex.DecodeString(goldenPack)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Add + Finish wrote a pack of %d bytes that differs from the golden %d bytes", len(got), len(want))
	}
	entries, err := ReadTrailer(bytes.NewReader(want), int64(len(want)), s)
	if err != nil {
		t.Fatal(err)
	}
	chunks := goldenPackChunks()
	if len(entries) != len(chunks) {
		t.Fatalf("trailer lists %d blobs, want %d", len(entries), len(chunks))
	}
	for i, e := range entries {
		plain, err := s.Open(nil, e.ID, want[e.Offset:e.Offset+e.Length])
		if err != nil || !bytes.Equal(plain, chunks[i].data) || e.Type != chunks[i].t || e.RawLength != int64(len(chunks[i].data)) {
			t.Errorf("blob %d: %d bytes, type %d, raw length %d, %v; want the golden chunk", i, len(plain), e.Type, e.RawLength, err)
		}
	}
}

// TestPackSealedInPlaceMatchesGolden builds the golden pack the way the
// writer does, reserving room and sealing each prepared chunk into it, and
// checks it is byte for byte the golden pack.
func TestPackSealedInPlaceMatchesGolden(t *testing.T) {
	s := testSealer(t)
	h := NewHasher([32]byte{2})
	var got []byte
	withFixedNonces(t, func() {
		p := NewPackBuilder(64 << 10)
		for _, c := range goldenPackChunks() {
			pre := s.Prepare(c.data, nil)
			region, ok := p.Reserve(h.Sum(c.data), c.t, pre.SealedLen(), int64(len(c.data)))
			if !ok {
				t.Fatal("Reserve refused room in a pack with space")
			}
			s.SealPrepared(region, h.Sum(c.data), pre)
		}
		got = p.Finish(s)
	})
	want, _ := hex.DecodeString(goldenPack)
	if !bytes.Equal(got, want) {
		t.Fatalf("Prepare + Reserve + SealPrepared wrote a pack of %d bytes that differs from the golden %d bytes", len(got), len(want))
	}
}

// TestReserveNeverMovesHandedOutRoom checks that room already handed out
// stays where it is: a blob that does not fit the buffer's capacity is
// refused, not made room for by moving the pack, while an empty pack grows
// to take any blob.
func TestReserveNeverMovesHandedOutRoom(t *testing.T) {
	p := NewPackBuilder(100)
	first, ok := p.Reserve(ID{1}, Data, 60, 60)
	if !ok {
		t.Fatal("the first blob did not fit an empty pack")
	}
	if _, ok := p.Reserve(ID{2}, Data, 41, 41); ok {
		t.Fatal("Reserve took room beyond the buffer's capacity in a non-empty pack")
	}
	copy(first, bytes.Repeat([]byte{0xaa}, 60))
	second, ok := p.Reserve(ID{3}, Data, 40, 40)
	if !ok {
		t.Fatal("a blob that fits was refused")
	}
	copy(second, bytes.Repeat([]byte{0xbb}, 40))
	if p.Size() != 100 || p.Len() != 2 {
		t.Fatalf("pack holds %d bytes in %d blobs, want 100 in 2", p.Size(), p.Len())
	}
	buf := p.buf[:p.Size()]
	if !bytes.Equal(buf[:60], first) || !bytes.Equal(buf[60:], second) || buf[0] != 0xaa || buf[60] != 0xbb {
		t.Fatal("the regions handed out are not the pack's bytes")
	}
	if e := p.Entries()[1]; e.ID != (ID{3}) || e.Offset != 60 || e.Length != 40 {
		t.Fatalf("second entry = %+v, want id 3 at 60, 40 bytes", e)
	}
	empty := NewPackBuilder(10)
	if region, ok := empty.Reserve(ID{4}, Data, 50, 50); !ok || len(region) != 50 {
		t.Fatalf("an empty pack refused a blob larger than its buffer (%d bytes, %v)", len(region), ok)
	}
}
