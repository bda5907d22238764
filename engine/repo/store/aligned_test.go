package store

import "testing"

func TestAlignedBytes(t *testing.T) {
	for _, n := range []int{1, 100, 4095, DirectIOAlignment, 40000, 1<<20 + 3, 18 << 20} {
		for range 3 {
			b := AlignedBytes(n)
			if len(b) != n || cap(b) != n {
				t.Fatalf("AlignedBytes(%d): len %d cap %d", n, len(b), cap(b))
			}
			if !IsAligned(b) || !IsAligned(b[:0]) {
				t.Fatalf("AlignedBytes(%d) is not aligned", n)
			}
			for i, c := range b {
				if c != 0 {
					t.Fatalf("AlignedBytes(%d)[%d] = %d, want zero", n, i, c)
				}
			}
		}
	}
	if b := AlignedBytes(0); len(b) != 0 {
		t.Fatalf("AlignedBytes(0) has %d bytes", len(b))
	}
	b := AlignedBytes(2 * DirectIOAlignment)
	if IsAligned(b[1:]) || IsAligned(b[DirectIOAlignment-1:]) || !IsAligned(b[DirectIOAlignment:]) {
		t.Fatal("IsAligned does not tell aligned from unaligned memory")
	}
	if IsAligned(nil) {
		t.Fatal("IsAligned(nil) = true")
	}
}
