package chunker

import (
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"testing"
)

// editStats is what one edit costs a repository that already holds the
// original: the chunks and bytes of the edited stream that are not stored yet.
type editStats struct {
	meanChunk float64 // mean chunk length of the original
	newChunks float64 // per edit
	newBytes  float64 // per edit
	tail      float64 // fraction of edits with 4 or more new chunks
}

// measureEdits applies n random small edits (insert, delete or overwrite of
// 1..Min/2 bytes, on random and on text-like data) and counts new chunks. It
// chunks only a window around each edit, starting at a cut point of the
// original, so that thousands of edits take about a second.
func measureEdits(tb testing.TB, p Params, level, n int) editStats {
	c, err := newCutterLevel(p, level)
	if err != nil {
		tb.Fatal(err)
	}
	cuts := func(data []byte) []int {
		var out []int
		for off := 0; off < len(data); {
			off += c.cut(data[off:])
			out = append(out, off)
		}
		return out
	}
	seed := maphash.MakeSeed()
	sources := [][]byte{pseudoRandom(16<<20, 61), textLike(16<<20, 62)}
	origCuts := [][]int{cuts(sources[0]), cuts(sources[1])}
	var st editStats
	st.meanChunk = float64(len(sources[0])+len(sources[1])) / float64(len(origCuts[0])+len(origCuts[1]))
	before, after := 2*p.Max, 8*p.Max
	rng := uint64(level*1000 + p.Min)
	patch := pseudoRandom(p.Min, 63)
	var edited []byte
	for i := range n {
		src, oc := sources[i%2], origCuts[i%2]
		at := before + int(splitmix64(&rng)%uint64(len(src)-before-after))
		k := 1 + int(splitmix64(&rng)%uint64(p.Min/2))
		j := sort.SearchInts(oc, at-before)
		ws, we := oc[j], at+after
		orig := map[uint64]bool{}
		prev := ws
		for _, e := range oc[j+1:] {
			if e >= we {
				break
			}
			orig[maphash.Bytes(seed, src[prev:e])] = true
			prev = e
		}
		switch i % 3 {
		case 0:
			edited = slices.Concat(edited[:0], src[ws:at], patch[:k], src[at:we])
		case 1:
			edited = slices.Concat(edited[:0], src[ws:at], src[at+k:we])
		default:
			edited = slices.Concat(edited[:0], src[ws:at], patch[:k], src[at+k:we])
		}
		ec := cuts(edited)
		newChunks := 0
		prev = 0
		for _, e := range ec[:len(ec)-1] { // the window's last chunk is cut artificially
			if !orig[maphash.Bytes(seed, edited[prev:e])] {
				newChunks++
				st.newBytes += float64(e - prev)
			}
			prev = e
		}
		st.newChunks += float64(newChunks)
		if newChunks >= 4 {
			st.tail++
		}
	}
	st.newChunks /= float64(n)
	st.newBytes /= float64(n)
	st.tail /= float64(n)
	return st
}

// BenchmarkEditLocality is the measurement behind the normalization level and
// the Min/Avg ratio (see doc.go). Chunk sizes scale out of the result, so it
// runs at Avg = 8 KiB to get many chunks per edit cheaply; the timed loop is
// the chunking of the 32 MiB test data.
func BenchmarkEditLocality(b *testing.B) {
	type cfg struct {
		level, minDiv, maxMul int
	}
	for _, c := range []cfg{{0, 4, 4}, {1, 4, 4}, {2, 4, 4}, {3, 4, 4}, {1, 2, 4}, {1, 8, 8}, {2, 8, 8}} {
		p := Params{Min: 8 << 10 / c.minDiv, Avg: 8 << 10, Max: 8 << 10 * c.maxMul}
		b.Run(fmt.Sprintf("level=%d/%s", c.level, benchName(p)), func(b *testing.B) {
			st := measureEdits(b, p, c.level, 4000)
			b.Log(fmt.Sprintf("| %d | %s | %.2f | %.2f | %.2f | %.2f | %.1f%% |", c.level, p, st.meanChunk/float64(p.Avg),
				st.newChunks, st.newBytes/float64(p.Avg), st.newBytes/st.meanChunk, 100*st.tail))
			b.ReportMetric(st.meanChunk/float64(p.Avg), "mean/avg")
			b.ReportMetric(st.newChunks, "newchunks/edit")
			b.ReportMetric(st.newBytes/float64(p.Avg), "newbytes/edit/avg")
			b.ReportMetric(st.newBytes/st.meanChunk, "newbytes/edit/mean")
			cu, err := newCutterLevel(p, c.level)
			if err != nil {
				b.Fatal(err)
			}
			data := pseudoRandom(32<<20, 64)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for off := 0; off < len(data); {
					off += cu.cut(data[off:])
				}
			}
		})
	}
}
