package chunker

import (
	"fmt"
	"math/bits"
)

// Params bound the chunk sizes of content-defined chunking, in bytes.
//
// Params are part of the repository format in the same way as the gear table:
// two repositories (or two backups) only share chunks if they were cut with
// the same Params, so a storage records the Params it was created with and
// they are not changed afterwards.
type Params struct {
	// Min is the smallest chunk (except the last chunk of a stream). No cut
	// point is considered before it, so those bytes are not even hashed:
	// about a fifth of all bytes with Min = Avg/4, and all of every file
	// shorter than Min.
	Min int
	// Avg is the target chunk size, a power of two. Below it a cut needs one
	// more zero hash bit than log2(Avg), from it on one fewer, which pulls
	// chunk sizes towards Avg ("normalized chunking"). Because of Min the
	// mean chunk on random data is about 1.22*Avg.
	Avg int
	// Max is the largest chunk. A stream without a cut point, such as a run
	// of zeros, is cut every Max bytes.
	Max int
}

// DefaultParams are the Params of new storages: 256 KiB / 1 MiB / 4 MiB.
// The package documentation records the measurement behind them.
var DefaultParams = Params{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}

// Bounds enforced by Validate. The lower ones keep the 64-byte hash window and
// the two mask widths meaningful; the upper one bounds memory, since a CDC
// buffers 2*Max bytes.
const (
	minMin = 64
	minAvg = 256
	maxMax = 64 << 20
)

// normalization is how many bits the two masks differ from log2(Avg). It is
// part of the format. Level 1 was chosen over the FastCDC paper's level 2 by
// measurement (see the package documentation): both store the same bytes per
// edit at the same mean chunk size, but at level 2 the region below Avg is so
// strict that a moved cut point moves the next ones too six times as often,
// so more single edits rewrite several chunks.
const normalization = 1

// Validate reports whether p can be used for chunking.
func (p Params) Validate() error {
	switch {
	case p.Avg < minAvg || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunker: Avg %d must be a power of two of at least %d", p.Avg, minAvg)
	case p.Min < minMin:
		return fmt.Errorf("chunker: Min %d must be at least %d", p.Min, minMin)
	case p.Min >= p.Avg:
		return fmt.Errorf("chunker: Min %d must be smaller than Avg %d", p.Min, p.Avg)
	case p.Max <= p.Avg:
		return fmt.Errorf("chunker: Max %d must be larger than Avg %d", p.Max, p.Avg)
	case p.Max > maxMax:
		return fmt.Errorf("chunker: Max %d must be at most %d", p.Max, maxMax)
	}
	return nil
}

func (p Params) String() string {
	return fmt.Sprintf("min=%s avg=%s max=%s", sizeString(p.Min), sizeString(p.Avg), sizeString(p.Max))
}

// masks returns the strict mask used below Avg and the loose one used from
// Avg on. They select the top bits of the gear hash because the hash shifts
// left: bit k depends only on the last k+1 bytes, so only the top bits see the
// full 64-byte window.
func (p Params) masks(level int) (strict, loose uint64) {
	b := bits.TrailingZeros(uint(p.Avg))
	return topBits(b + level), topBits(b - level)
}

func topBits(n int) uint64 {
	return ^uint64(0) << (64 - n)
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
