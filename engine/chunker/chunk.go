package chunker

// Chunk is one piece of a stream or device.
type Chunk struct {
	// Offset is where the chunk starts in the stream or device.
	Offset int64
	// Length is the number of bytes the chunk covers. It equals len(Data)
	// for data chunks and is the size of the zero range for holes.
	Length int
	// Data holds the chunk's bytes. It aliases the chunker's buffer and is
	// only valid until the next call to Next (or Reset), so callers that keep
	// it must copy it. It is nil for holes.
	Data []byte
	// Hole is set by the fixed-size chunker for blocks that are all zeros.
	// Holes are recorded, never stored.
	Hole bool
}
