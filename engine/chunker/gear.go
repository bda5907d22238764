package chunker

// gearSeed is the splitmix64 seed of the gear table: the ASCII bytes of
// "HavenCDC" read as a big-endian integer. A named, memorable constant makes it
// obvious in review that the table is not random per build.
const gearSeed uint64 = 0x486176656e434443

// gear maps every byte value to a 64-bit pseudo-random constant for the gear
// rolling hash. It is part of the repository format: a different table moves
// every cut point, so chunks of new backups would no longer dedup against
// chunks already stored. TestGearTablePinned guards it.
var gear = newGearTable(gearSeed)

// newGearTable fills the table with consecutive splitmix64 outputs. splitmix64
// is used because it is a few lines of integer arithmetic with a published
// reference (Steele, Lea, Flood: "Fast splittable pseudorandom number
// generators", OOPSLA 2014), so the table can be re-derived in any language
// without depending on a library's RNG stream staying stable.
func newGearTable(seed uint64) [256]uint64 {
	var t [256]uint64
	s := seed
	for i := range t {
		t[i] = splitmix64(&s)
	}
	return t
}

func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
