// Package chunker splits backup data into the chunks that the repository
// identifies, deduplicates and stores.
//
// Two kinds of chunking are used, matching how the data changes:
//
//   - Content-defined chunking (CDC, Cuts) for files and database files. Cut
//     points are chosen by the content, so inserting or deleting bytes moves
//     only the chunks around the edit; everything after it is cut the same
//     way again and deduplicates against the previous backup.
//   - Fixed-size, aligned chunking (Fixed) for block devices and VM disks.
//     Their edits overwrite in place and changed-block tracking reports them
//     as byte ranges, so a block's identity is its position; all-zero blocks
//     become holes and are never stored.
//
// # The content-defined chunking algorithm (repository format)
//
// Cut points are part of the repository format: an implementation that
// differs in any detail below still produces valid backups, but they no
// longer deduplicate against data cut before. Tests pin the gear table and
// the cut points of fixed inputs; the pinned values were reproduced by an
// independent implementation written from this description.
//
// Gear table: gear[i] for i = 0..255 is the i-th output of splitmix64 started
// from state 0x486176656e434443 ("HavenCDC" read big-endian). One splitmix64
// step is: state += 0x9e3779b97f4a7c15; z = state;
// z = (z ^ z>>30) * 0xbf58476d1ce4e5b9; z = (z ^ z>>27) * 0x94d049bb133111eb;
// output z ^ z>>31, all modulo 2^64.
//
// Hash: h = h<<1 + gear[b] modulo 2^64 for each byte b. A byte's contribution
// is shifted out after 64 more bytes, so h depends on the last 64 bytes only
// (the window). Only h's top bits are tested, since the low bits see only the
// last few bytes.
//
// Cut rule, for a chunk starting at offset 0 of the remaining input, with
// b = log2(Avg): h starts at 0 and bytes Min-64 .. Min-2 are hashed without
// testing, so that each decision depends only on the window, not on where the
// chunk started. Then, for each length L from Min on, byte L-1 is hashed and
// the chunk ends after it if the top b+1 bits of h are zero while L < Avg
// (strict), or the top b-1 bits while L >= Avg (loose). A chunk that reaches
// Max ends there. If the input ends before a cut point (or holds no more than
// Min bytes), the rest is the last chunk. Chunks therefore have lengths in
// [Min, Max], except a last chunk that may be shorter than Min.
//
// The strict and loose masks are FastCDC's "normalized chunking" (Xia et al.,
// USENIX ATC 2016), at level 1: one bit either side of log2(Avg), where the
// paper favours level 2. On random data the mean chunk is about 1.22*Avg,
// because no chunk is shorter than Min and few cut points pass the strict
// test; TestAverageChunkSize checks the distribution against that model.
//
// Normalization level, measured with BenchmarkEditLocality (random small
// inserts, deletes and overwrites of 1 to Min/2 bytes in random and text data,
// 4000 edits per row; sizes in units of Avg = 8 KiB, which scale out):
//
//	level  min/avg/max     mean chunk  new chunks  new bytes  new bytes    edits with
//	                       (x Avg)     per edit    per edit   / mean chunk >= 4 new chunks
//	0      2K/8K/32K       1.23        1.08        2.04       1.67         0.0%
//	1      2K/8K/32K       1.22        1.10        1.66       1.36         0.5%
//	2      2K/8K/32K       1.15        1.26        1.56       1.36         3.0%
//	3      2K/8K/32K       1.08        1.87        2.07       1.91         10.6%
//	1      4K/8K/32K       1.33        1.15        1.79       1.35         0.9%
//	1      1K/8K/64K       1.16        1.04        1.54       1.33         0.1%
//	2      1K/8K/64K       1.12        1.14        1.41       1.26         1.4%
//
// Normalization pays off (level 0 stores 23% more per edit for the same index
// size), but level 2 buys nothing over level 1 in bytes per edit at the
// same mean chunk size, and six times as often an edit rewrites four or more
// chunks: a moved cut point changes where the next chunk's Min skipping ends,
// and the stricter the region below Avg, the more likely the next cut moves as
// well. Level 1 was chosen for the more predictable locality. A smaller Min
// gains a few percent per edit but hashes more bytes and needs a larger Max to
// keep forced cuts rare.
//
// # Defaults, and the measurement behind them
//
// DefaultParams (Min 256 KiB, Avg 1 MiB, Max 4 MiB; mean chunk about
// 1.2 MiB) were picked with BenchmarkDataset on trees from Haven's
// make-dataset script: scale 1 (seed 1, 257 MiB in 1820 files of 100 B to
// 4 MiB, median 24 KiB, a quarter of them copies of others), changed copies
// at --change 1 and --change 5, and a second tree at scale 2, seed 2 with
// --change 1. Chunking throughput is for the in-memory files/ tree on one core
// of a 2-vCPU AMD EPYC VM; files shorter than Min are not hashed at all, which
// is why larger Min is faster there. On 64 MiB of random data (BenchmarkCDC)
// every candidate runs at 1.4 to 1.8 GB/s (runs vary that much on this
// shared VM). "stored" is unique bytes / total
// bytes of files/; "index" is the chunk index this tree implies per TiB
// stored, at about 100 bytes per PostgreSQL row; "new" is the bytes a backup
// of the changed tree adds.
//
//	params (min/avg/max)  MB/s  stored  chunks  index MB/TiB  new MiB, seed 1  new MiB, seed 1  new MiB, seed 2
//	                                                          --change 1       --change 5       scale 2 --change 1
//	whole files (no CDC)  -     0.6767  1363    821           3.04             16.11            5.80
//	16K/64K/256K (ref.)   1448  0.6767  3358    2022          1.30             6.74             2.90
//	64K/256K/1M           2258  0.6767  1751    1055          2.07             8.99             3.99
//	128K/512K/2M          2599  0.6767  1525    918           2.65             10.56            4.92
//	256K/1M/4M (default)  3049  0.6767  1421    856           3.04             11.92            5.80
//	128K/1M/8M            2453  0.6767  1435    864           2.81             11.87            5.48
//	512K/2M/8M            2979  0.6767  1381    832           3.04             16.11            5.80
//	1M/4M/16M             4281  0.6767  1365    822           3.04             16.11            5.80
//
// What the numbers say:
//
//   - Dedup across files is the same for every candidate: the duplicates in
//     this data are whole-file copies, and any chunking cuts copies alike.
//   - Incrementals grow with chunk size. Against 256 KiB, 1 MiB adds 33% to
//     47% more new bytes (3.04 vs 2.07 MiB a day at 1% change: 1.2% instead
//     of 0.8% of the tree). The 64 KiB row approximates the bytes that
//     really changed. Most changed files here are smaller than Min at any
//     candidate, so 1 MiB is no better than whole-file dedup on this tree;
//     its gain is on large files, where an edit costs about one 1.2 MiB chunk
//     instead of the whole file.
//   - The index grows with the inverse of the chunk size. This tree is
//     dominated by small files (one row each whatever the Params), which
//     hides it; for large files the rows per TiB are 2^40 / (1.22*Avg):
//     about 3.4 M rows (340 MB) per TiB at 256 KiB, 1.7 M at 512 KiB and
//     0.86 M (86 MB) at 1 MiB. The same factor applies to chunk references
//     in every recovery point's manifests and to index lookups per byte
//     backed up.
//
// Haven keeps the chunk index in PostgreSQL and every worker and replica
// looks chunks up in it, so its working set has to stay in memory as
// repositories grow: at 100 TiB stored, 1 MiB chunks mean about 9 GB of index
// where 256 KiB would mean about 35 GB. That, four times fewer manifest
// entries and lookups, and the same index density as the 1 MiB blocks of VM
// disks (one sizing rule for the whole product) outweigh the extra
// incremental bytes, which stay bounded by about one chunk per changed
// region. Min = Avg/4 and Max = 4*Avg keep a CDC's buffer at 8 MiB and make
// forced cuts at Max rare on real data (about 0.2% of chunks on random data);
// 128K/1M/8M saved up to 8% on incrementals, mostly by being slightly
// smaller on average, but hashes more, runs slower and doubles the buffer. Storages whose data is dominated by large files with
// many small scattered changes may be created with smaller Params (Params
// are recorded per storage and never change afterwards).
//
// # Fixed-size chunking
//
// Blocks are aligned to multiples of the block size (DefaultBlockSize,
// 1 MiB; a power of two from 4 KiB to 64 MiB), the last block of a device may
// be partial, and all-zero blocks are reported as holes. NewFixedExtents reads
// only the blocks covering changed-block-tracking ranges. Measured on the
// same datasets' 256 MiB (seed 1) disk image, whose generator writes 1 MiB
// blocks of random, zero and text data, and rewrites 4 KiB to 1 MiB ranges
// when changed (BenchmarkDatasetFixed):
//
//	block   MB/s   holes  stored  blocks  index MB/TiB  new MiB, --change 1  new MiB, --change 5
//	64 KiB  13037  28.1%  0.6719  2752    1678          0.12                 1.88
//	256 KiB 15888  28.1%  0.6719  688     419           0.50                 4.50
//	1 MiB   13667  28.1%  0.6719  172     105           2.00                 13.00
//	4 MiB   19683  1.6%   0.9844  63      26            8.00                 48.00
//
// Blocks larger than the granularity at which a disk has zeros lose the
// holes (4 MiB here, an artefact of the generator's 1 MiB layout that real
// thin disks show at other sizes); smaller blocks store less per small write
// but multiply index rows. 1 MiB keeps the index at the same density as file
// chunks. Throughput is bounded by copying the blocks: the zero check runs at
// about 30 GB/s (BenchmarkIsZero).
//
// # Re-running the measurements
//
// BenchmarkCDC, BenchmarkCuts, BenchmarkFixed, BenchmarkIsZero and
// BenchmarkEditLocality run with any -bench flag. BenchmarkDataset and
// BenchmarkDatasetFixed need a dataset (they skip without one):
//
//	python3 make-dataset DIR/base --scale 1
//	cp -a DIR/base DIR/c1 && python3 make-dataset DIR/c1 --change 1
//	HAVEN_BENCH_DATASET=DIR/base HAVEN_BENCH_DATASET_CHANGED=DIR/c1 \
//	    go test -run XXX -bench Dataset -benchtime 3x ./engine/chunker/
//
// Each benchmark logs its row of the tables above.
package chunker
