package chunker

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"testing"
)

// The values below are part of the repository format. If one of these tests
// fails, the change moves cut points and breaks dedup against every existing
// backup: revert it rather than updating the constants.

func TestSplitmix64ReferenceVector(t *testing.T) {
	// First outputs of the reference splitmix64 (Vigna's splitmix64.c) from
	// state 0, so the generator behind the gear table can be checked against
	// an independent implementation.
	s := uint64(0)
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	for i, w := range want {
		if got := splitmix64(&s); got != w {
			t.Fatalf("output %d = %#016x, want %#016x", i, got, w)
		}
	}
}

func TestGearTablePinned(t *testing.T) {
	var b []byte
	for _, g := range gear {
		b = binary.LittleEndian.AppendUint64(b, g)
	}
	sum := sha256.Sum256(b)
	const want = "c817f587f2a1803b698ea5d773ae1b2e6cb4493e663a264a9b5e46f90df916ed"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("SHA-256 of the gear table (256 little-endian uint64) = %s, want %s", got, want)
	}
	if gear[0] != 0x9bdd92e707e8be85 || gear[255] != 0x9cacca4878838615 {
		t.Fatalf("gear[0] = %#016x, gear[255] = %#016x", gear[0], gear[255])
	}
	if newGearTable(gearSeed) != gear {
		t.Fatal("the gear table is not derived from gearSeed")
	}
}

func TestDefaultParamsPinned(t *testing.T) {
	want := Params{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}
	if DefaultParams != want {
		t.Fatalf("DefaultParams = %v, want %v: changing them changes the format of new storages", DefaultParams, want)
	}
}

// TestCutPointsPinned pins the whole algorithm (gear table, window, masks,
// normalization level, Min skipping). The DefaultParams list and the small
// random case were cross-checked against an independent Python
// implementation written from the description in doc.go.
func TestCutPointsPinned(t *testing.T) {
	got, err := Cuts(pseudoRandom(16<<20, 2024), DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{1273071, 2362341, 3899145, 5159046, 6549376, 8416011, 8945639, 10543129,
		13476166, 14378011, 15435249, 16608281, 16777216}
	if !slices.Equal(got, want) {
		t.Fatalf("cut points of 16 MiB of splitmix64(2024) bytes:\n got %v\nwant %v", got, want)
	}

	// Small chunks give many more cut points per byte; text exercises a
	// skewed byte distribution.
	small := Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}
	for _, tc := range []struct {
		name  string
		data  []byte
		n     int
		first []int
		sum   string
	}{
		{"random", pseudoRandom(1<<20, 7), 105, []int{2132, 12525, 20343, 33592},
			"cd398beb6de67504b81bdf90d7ef6bb3f56be0ea01a2e220aef38e07953b79ff"},
		{"text", textLike(1<<20, 7), 101, []int{14840, 40231, 43900, 63076},
			"1cc2b014682c8f501faf4836ed93ff73f75757a00d3c7704af4b043a45639b6e"},
	} {
		cuts, err := Cuts(tc.data, small)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for _, c := range cuts {
			b = binary.LittleEndian.AppendUint64(b, uint64(c))
		}
		sum := sha256.Sum256(b)
		if len(cuts) != tc.n || !slices.Equal(cuts[:len(tc.first)], tc.first) || hex.EncodeToString(sum[:]) != tc.sum {
			t.Errorf("%s: %d cuts starting %v, SHA-256 %x; want %d starting %v, %s",
				tc.name, len(cuts), cuts[:min(len(cuts), len(tc.first))], sum, tc.n, tc.first, tc.sum)
		}
	}
}
