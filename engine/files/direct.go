package files

import (
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"sync"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
)

// Large files are restored with direct I/O where the filesystem takes it:
// their chunks are assembled into aligned windows in memory, each chunk is
// checked there once every window it touches is whole, and a window is
// handed to the writers once every chunk in it has been checked. The
// source checked each chunk's bytes against its id before handing them
// over (Source's contract), so the check in the window is that the bytes
// there are still the ones that arrived: their CRC-32C, not a second
// keyed hash. Written through the page cache, a restored 1 GiB database
// segment cost more kernel time copying pages (and, on a host whose memory
// was never touched, faulting them in) than the restore spent on
// everything else, and its bytes were then read back from that cache for
// the check. Chunks are content-defined, so they are not aligned: a window
// is the unit that is.
//
// What the read-back check caught after the write (bytes changed behind
// the restore's back) is caught by finish instead: the file must have the
// size the writes gave it, and no written extent may read as a hole.
// Reading the bytes back would read the disk, since direct writes leave
// nothing in the page cache.
const (
	// directFileBytes is the size from which a file is written directly.
	directFileBytes = 32 << 20
	// directWindowBytes is one window: a multiple of every logical block
	// size direct I/O may demand, and one huge page (alignedBuffer). A
	// chunk (1 MiB on average) spans one or two windows, so the windows a
	// restore holds cover more places in its files at once than as many
	// bytes of larger windows would: with 8 MiB windows, a PostgreSQL
	// restore of three large files found all its windows half assembled
	// and wrote a third of its bytes through the page cache instead
	// ("spilled", below); with 2 MiB ones, 2%. Windows smaller than a huge
	// page are each a page fault per 4 KiB again.
	directWindowBytes = 2 << 20
	directAlign       = 4096
)

// directWindowsMax bounds the windows a restore holds at once (their
// memory). When they are all out, a chunk that needs another waits for a
// window to be written; when none is being written (all are still being
// assembled), that chunk's window is written through the page cache
// instead ("spilled"), and the chunks over it are checked by reading them
// back, as small files' are. The repository hands chunks over nearly in
// file order, so a few windows are open at a time in each file being
// restored. (A variable for tests, which set it low to make windows
// spill.)
var directWindowsMax = 32

// hookDirectWindow lets tests see each window written (true) or spilled.
var hookDirectWindow func(written bool)

// windowPool lends a restore its aligned window buffers, bounds how many
// are out, and writes whole windows on its own goroutines, so that the
// repository's readers go on decoding while the disk writes.
type windowPool struct {
	mu      sync.Mutex
	freed   *sync.Cond // a buffer came back
	free    [][]byte
	out     int
	writing int // windows queued or being written
	all     [][]byte
	writes  chan windowWrite
	writers sync.WaitGroup
	err     error // the first failed write or completion
}

type windowWrite struct {
	d *directFile
	w *window
}

func newWindowPool() *windowPool {
	p := &windowPool{}
	p.freed = sync.NewCond(&p.mu)
	return p
}

// start starts the writers for one load; wait ends them.
func (p *windowPool) start() {
	p.writes = make(chan windowWrite, directWindowsMax)
	p.err = nil
	for range max(2, runtime.GOMAXPROCS(0)) {
		p.writers.Add(1)
		go func() {
			defer p.writers.Done()
			for ww := range p.writes {
				if err := ww.d.write(ww.w); err != nil {
					p.fail(err)
				}
			}
		}()
	}
}

// wait waits for every queued write and returns the first error of a
// write or of a file completed by one.
func (p *windowPool) wait() error {
	close(p.writes)
	p.writers.Wait()
	return p.err
}

func (p *windowPool) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// queue hands a whole, checked window to the writers.
func (p *windowPool) queue(d *directFile, w *window) {
	p.mu.Lock()
	p.writing++
	p.mu.Unlock()
	p.writes <- windowWrite{d, w}
}

// take returns a zeroed window. When directWindowsMax are out it waits
// for one to be written, or returns nil when none is being written (all
// are still being assembled) or no aligned memory could be had.
func (p *windowPool) take() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.out >= directWindowsMax {
		if p.writing == 0 {
			return nil
		}
		p.freed.Wait()
	}
	var b []byte
	if n := len(p.free); n > 0 {
		b, p.free = p.free[n-1], p.free[:n-1]
		clear(b)
	} else {
		var err error
		if b, err = alignedBuffer(directWindowBytes); err != nil {
			return nil
		}
		p.all = append(p.all, b)
	}
	p.out++
	return b
}

// give takes a buffer back; written says it was a written window's.
func (p *windowPool) give(b []byte, written bool) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.out--
	if written {
		p.writing--
	}
	p.freed.Broadcast()
	p.mu.Unlock()
}

// release frees every buffer; the pool must not be in use.
func (p *windowPool) release() {
	for _, b := range p.all {
		freeAligned(b)
	}
	p.all, p.free, p.out = nil, nil, 0
}

// window is one aligned directWindowBytes of a directly written file.
type window struct {
	start            int64
	first, last      int // the chunks that overlap it (indexes into the entry's chunks)
	buf              []byte
	left             int64 // data bytes still to arrive
	unchecked        int   // data chunks over it not yet checked in memory
	spilled, written bool
}

// directFile is a large file being restored through windows. Its methods
// are called from the repository's load goroutines.
type directFile struct {
	src    Source
	pool   *windowPool
	f      *os.File // opened for direct I/O
	buffed *os.File // the same file through the page cache, for spilled windows
	e      *Entry
	starts []int64 // each chunk's offset
	// waiting counts, per data chunk, the windows it overlaps that are not
	// yet whole; readBack marks the chunks checked by reading the file
	// back (those over a spilled window); zero, those that arrived as
	// zeros (left as holes).
	waiting  []int
	readBack []bool
	zero     []bool
	// sums are the CRC-32C of each chunk's bytes as they arrived: the
	// source hands over only bytes it checked against the chunk's id, so
	// a window whose bytes have these sums holds exactly those bytes, for
	// a tenth of the cost of hashing them again.
	sums    []uint32
	windows []*window
	mu      sync.Mutex
	// outstanding counts the chunks to arrive plus the windows to write
	// or spill: the file is complete when it reaches zero.
	outstanding int
	// written are the extents written directly, for finish's checks.
	written []extent
	// complete runs once the file is complete (on whichever goroutine
	// completed it).
	complete func() error
}

// newDirectFile prepares e, already created at its size through buffed,
// for direct writes through f; complete runs once it is all written.
func newDirectFile(src Source, pool *windowPool, f, buffed *os.File, e *Entry, complete func() error) *directFile {
	d := &directFile{src: src, pool: pool, f: f, buffed: buffed, e: e, complete: complete,
		starts: make([]int64, len(e.Chunks)), waiting: make([]int, len(e.Chunks)),
		readBack: make([]bool, len(e.Chunks)), zero: make([]bool, len(e.Chunks)), sums: make([]uint32, len(e.Chunks))}
	var off int64
	for i, c := range e.Chunks {
		d.starts[i] = off
		if !c.Hole {
			d.outstanding++
		}
		if !c.Hole && c.Len > 0 {
			for w := off / directWindowBytes; w*directWindowBytes < off+c.Len; w++ {
				win := d.window(w)
				if win == nil {
					win = &window{start: w * directWindowBytes, first: i}
					d.windows = append(d.windows, win)
					d.outstanding++
				}
				win.last = i
				win.left += min(off+c.Len, win.start+directWindowBytes) - max(off, win.start)
				win.unchecked++
				d.waiting[i]++
			}
		}
		off += c.Len
	}
	return d
}

// window finds window number w among those holding data (they are in
// order, and lookups are for the newest or nearly so).
func (d *directFile) window(w int64) *window {
	start := w * directWindowBytes
	for i := len(d.windows) - 1; i >= 0; i-- {
		if d.windows[i].start == start {
			return d.windows[i]
		}
		if d.windows[i].start < start {
			break
		}
	}
	return nil
}

// windowsOf are the windows chunk i overlaps.
func (d *directFile) windowsOf(i int) []*window {
	var ws []*window
	off, end := d.starts[i], d.starts[i]+d.e.Chunks[i].Len
	if end == off {
		return nil
	}
	for w := off / directWindowBytes; w*directWindowBytes < end; w++ {
		ws = append(ws, d.window(w))
	}
	return ws
}

// arrive places chunk i's bytes, queues the windows it made ready, and
// completes the file when nothing is left to arrive or to write.
func (d *directFile) arrive(i int, data []byte) error {
	off := d.starts[i]
	if ref := d.e.Chunks[i]; int64(len(data)) != ref.Len {
		return fmt.Errorf("%w: bytes %d-%d came as %d bytes of chunk %s", ErrWrongBytes, off, off+ref.Len, len(data), ref.ID.Short())
	}
	ws := d.windowsOf(i)
	var ready []*window
	for _, w := range ws {
		d.mu.Lock()
		open := w.buf == nil && !w.spilled && !w.written
		d.mu.Unlock()
		if !open {
			continue
		}
		// Taking a buffer may wait for a write, so it is not done under
		// d.mu; another chunk over the same window may open it meanwhile.
		buf := d.pool.take()
		d.mu.Lock()
		switch {
		case w.buf != nil || w.spilled:
			if buf != nil {
				d.pool.give(buf, false)
			}
		case buf == nil:
			ready = append(ready, d.spill(w)...)
		default:
			w.buf = buf
		}
		d.mu.Unlock()
	}
	zero, sum := chunker.IsZero(data), crc32.Checksum(data, castagnoli)
	d.mu.Lock()
	d.zero[i], d.sums[i] = zero, sum
	d.mu.Unlock()
	for _, w := range ws {
		lo, hi := max(off, w.start), min(off+int64(len(data)), w.start+directWindowBytes)
		part := data[lo-off : hi-off]
		if w.spilled {
			if !d.zero[i] {
				if _, err := d.buffed.WriteAt(part, lo); err != nil {
					return err
				}
			}
			continue
		}
		copy(w.buf[lo-w.start:], part)
		if hookAssembled != nil {
			hookAssembled(w.buf[lo-w.start : hi-w.start])
		}
	}
	var check []int
	d.mu.Lock()
	for _, w := range ws {
		if w.spilled {
			continue
		}
		lo, hi := max(off, w.start), min(off+int64(len(data)), w.start+directWindowBytes)
		if w.left -= hi - lo; w.left == 0 {
			for c := w.first; c <= w.last; c++ {
				if d.waiting[c] > 0 && !d.readBack[c] {
					if d.waiting[c]--; d.waiting[c] == 0 {
						check = append(check, c)
					}
				}
			}
			if w.unchecked == 0 {
				ready = append(ready, w)
			}
		}
	}
	d.mu.Unlock()
	for _, c := range check {
		if err := d.checkInMemory(c); err != nil {
			return err
		}
		d.mu.Lock()
		for _, w := range d.windowsOf(c) {
			if w.unchecked--; w.unchecked == 0 && w.left == 0 && !w.spilled {
				ready = append(ready, w)
			}
		}
		d.mu.Unlock()
	}
	done := 1 // this chunk
	for _, w := range ready {
		if w.spilled {
			done++
		} else {
			d.pool.queue(d, w)
		}
	}
	return d.settle(done)
}

// settle counts n things done (arrivals, windows written or spilled), and
// completes the file when they were the last.
func (d *directFile) settle(n int) error {
	d.mu.Lock()
	d.outstanding -= n
	complete := d.outstanding == 0
	d.mu.Unlock()
	if complete {
		return d.complete()
	}
	return nil
}

// spill gives up on assembling w (no window was free): what arrives for
// it is written through the page cache, and its chunks are checked by
// reading them back. Chunks over w no longer hold up the other windows
// they overlap; it returns those that are now ready. Called with d.mu held
// and w empty.
func (d *directFile) spill(w *window) (ready []*window) {
	w.spilled = true
	if hookDirectWindow != nil {
		hookDirectWindow(false)
	}
	for c := w.first; c <= w.last; c++ {
		if d.e.Chunks[c].Hole || d.readBack[c] {
			continue
		}
		d.readBack[c] = true
		for _, o := range d.windowsOf(c) {
			if o != w && !o.spilled {
				if o.unchecked--; o.unchecked == 0 && o.left == 0 {
					ready = append(ready, o)
				}
			}
		}
	}
	// The window counts as done; the caller counts it with the others.
	return append(ready, w)
}

// checkInMemory checks chunk c, whole in its windows, against its id.
func (d *directFile) checkInMemory(c int) error {
	ref := d.e.Chunks[c]
	off, end := d.starts[c], d.starts[c]+ref.Len
	ws := d.windowsOf(c)
	var data []byte
	if len(ws) == 1 {
		data = ws[0].buf[off-ws[0].start : end-ws[0].start]
	} else {
		bp := readBuffers.Get()
		defer readBuffers.Put(bp)
		if int64(cap(*bp)) < ref.Len {
			*bp = make([]byte, ref.Len)
		}
		data = (*bp)[:0]
		for _, w := range ws {
			data = append(data, w.buf[max(off, w.start)-w.start:min(end, w.start+directWindowBytes)-w.start]...)
		}
	}
	d.mu.Lock()
	want := d.sums[c]
	d.mu.Unlock()
	if got := crc32.Checksum(data, castagnoli); got != want {
		return fmt.Errorf("%w: bytes %d-%d of chunk %s changed between arriving and being written (CRC-32C %08x, arrived as %08x)",
			ErrWrongBytes, off, end, ref.ID.Short(), got, want)
	}
	return nil
}

// hookAssembled, when set, sees each part of a chunk copied into a
// window (tests change it, as a buffer reused too early would).
var hookAssembled func(part []byte)

// castagnoli is CRC-32C, which the CPU computes (SSE 4.2, ARMv8 CRC).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// write writes a whole, checked window: the aligned extents that hold
// data, so that holes and zero chunks stay holes (at the block size's
// grain), then lends its buffer back.
func (d *directFile) write(w *window) error {
	limit := min(w.start+directWindowBytes, alignUp(d.e.Size))
	var lo, hi int64 = -1, -1
	flush := func() error {
		if lo < 0 {
			return nil
		}
		_, err := d.f.WriteAt(w.buf[lo-w.start:hi-w.start], lo)
		if err != nil {
			return fmt.Errorf("direct write of bytes %d-%d: %w", lo, hi, err)
		}
		d.mu.Lock()
		d.written = append(d.written, extent{offset: lo, length: hi - lo})
		d.mu.Unlock()
		return nil
	}
	for c := w.first; c <= w.last; c++ {
		if d.e.Chunks[c].Hole || d.zero[c] {
			continue
		}
		s := max(alignDown(d.starts[c]), w.start)
		e := min(alignUp(d.starts[c]+d.e.Chunks[c].Len), limit)
		if lo >= 0 && s <= hi {
			hi = max(hi, e)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		lo, hi = s, e
	}
	err := flush()
	if hookDirectWindow != nil {
		hookDirectWindow(true)
	}
	d.mu.Lock()
	w.written = true
	buf := w.buf
	w.buf = nil
	d.mu.Unlock()
	d.pool.give(buf, true)
	if err != nil {
		return err
	}
	return d.settle(1)
}

// finish closes the direct descriptor, checks that what was written is
// still there (the size the writes made, no written extent a hole: what
// catches a file cut short or punched behind the restore's back, since
// chunks checked in memory are not read back), and gives the file back
// its size (the last window was written to a block boundary past it).
func (d *directFile) finish() error {
	if err := d.f.Close(); err != nil {
		return err
	}
	fi, err := d.buffed.Stat()
	if err != nil {
		return err
	}
	want := d.e.Size
	for _, x := range d.written {
		want = max(want, x.offset+x.length)
	}
	if fi.Size() != want {
		return fmt.Errorf("%w: %d bytes on disk after the writes, expected %d", ErrWrongBytes, fi.Size(), want)
	}
	for _, x := range d.written {
		if hole, err := nextHole(d.buffed, x.offset); err == nil && hole < x.offset+x.length {
			return fmt.Errorf("%w: bytes %d-%d were written and now read as a hole from %d", ErrWrongBytes, x.offset, x.offset+x.length, hole)
		}
	}
	return d.buffed.Truncate(d.e.Size)
}

// abandon lends back the buffers of a file whose restore failed.
func (d *directFile) abandon() {
	d.f.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.windows {
		if w.buf != nil && !w.written {
			d.pool.give(w.buf, false)
			w.buf = nil
		}
	}
}

// checkedInMemory reports whether chunk c was checked before it was
// written, so that reading the file back can pass over it.
func (d *directFile) checkedInMemory(c int) bool { return !d.readBack[c] }

func alignDown(n int64) int64 { return n &^ (directAlign - 1) }
func alignUp(n int64) int64   { return (n + directAlign - 1) &^ (directAlign - 1) }
