#!/usr/bin/env bash
# make bench-scale: the repository engine on many small files and on large
# sparse disk images, generated here, to show time and whether memory stays
# bounded as they grow. Phases of internal/cmd/haven-bench run as separate
# processes (peak RSS is per phase), each backup on a fresh state directory
# (embedded PostgreSQL, filesystem store) except the re-backup and the
# restore, which use the big backup's. Every figure is printed beside the
# limit measured in the same run on the same files: an lstat-only walk and
# open + read + keyed BLAKE3 of every file, on every core; writing the
# restored files anew without fsync; reading each image whole.
#
# HAVEN_SCALE_FILES (default 1000000, whole groups of 100000) and
# HAVEN_SCALE_IMAGE_GIB (default 20) set the large sizes; the small ones
# are 100000 files (the tree's first group, g0) and images of 2 and 8 GiB.
# The 2 GiB image holds 128 MiB of data, less than the backup pipeline
# keeps in flight once it is full (segment and pack buffers), so memory is
# judged between the 8 GiB image and the large one.
# HAVEN_BENCH_DIR keeps the work directory (default: a temp dir, removed).
# Heap profiles of the file backups stay in bin/bench-scale/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
files=${HAVEN_SCALE_FILES:-1000000}
image_gib=${HAVEN_SCALE_IMAGE_GIB:-20}
small_files=100000
small_image_gib=2
mid_image_gib=8
work=${HAVEN_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/haven-bench-scale.XXXXXX")}
mkdir -p "$work"; chmod 0755 "$work"
trap 'if [ -z "${HAVEN_BENCH_DIR:-}" ]; then rm -rf "$work"; fi' EXIT
started=$(date +%s.%N)

# A copy of its own, so that a rebuild during the run changes nothing.
bench="$work/haven-bench"
go build -o "$bench" ./internal/cmd/haven-bench
profiles="$root/bin/bench-scale"; mkdir -p "$profiles"
ds="$work/dataset"
rm -rf "$ds" "$work"/state-* "$work"/restore*
results="$work/results.jsonl"
: >"$results"
# run LABEL ARGS...: one phase, its JSON lines labelled and kept, with the
# phase's whole-process CPU (user + system, PostgreSQL included) added.
run() {
	local label=$1; shift
	local tf; tf=$(mktemp)
	/usr/bin/time -f '%U %S' -o "$tf" "$bench" "$@" >"$tf.out"
	read -r u s <"$tf"
	sed "s/^{/{\"label\":\"$label\",\"cpu_s\":$(python3 -c "print($u + $s)"),/" "$tf.out" | tee -a "$results" >&2
	rm -f "$tf" "$tf.out"
}
img_small="$ds/vm/disk-${small_image_gib}g.img"; img_mid="$ds/vm/disk-${mid_image_gib}g.img"; img_big="$ds/vm/disk-${image_gib}g.img"
echo "bench-scale: generating $files files and sparse images of $small_image_gib, $mid_image_gib and $image_gib GiB in $ds" >&2
run gen -phase scale-gen -dataset "$ds" -files "$files" -image-gib "$small_image_gib" -image-gib "$mid_image_gib" -image-gib "$image_gib"
sync
run limits -phase scale-limits -dataset "$ds/files" -image-gib "$img_small" -image-gib "$img_mid" -image-gib "$img_big"

run files-small -phase scale-ingest -state "$work/state-small" -path "$ds/files/g0" -point full -memprofile "$profiles/heap-files-small.pprof"
rm -rf "$work/state-small"
run files-full -phase scale-ingest -state "$work/state-big" -path "$ds/files" -point full -memprofile "$profiles/heap-files-full.pprof"
run files-unchanged -phase scale-ingest -state "$work/state-big" -path "$ds/files" -point same -parent full -memprofile "$profiles/heap-files-unchanged.pprof"
# The restore takes the first group back out of the big point; its limit
# writes the same files anew, on the same disk.
run restore -phase scale-restore -state "$work/state-big" -point full -out "$work/restore" -path "$ds/files/g0"
rm -rf "$work/restore"; sync
run write-limit -phase scale-write-limit -dataset "$ds/files/g0" -out "$work/restore-limit"
rm -rf "$work/restore-limit" "$work/state-big"

run image-small -phase scale-ingest -state "$work/state-image-small" -path "$img_small" -point full
rm -rf "$work/state-image-small"
run image-mid -phase scale-ingest -state "$work/state-image-mid" -path "$img_mid" -point full
rm -rf "$work/state-image-mid"
run image-big -phase scale-ingest -state "$work/state-image-big" -path "$img_big" -point full
rm -rf "$work/state-image-big"

# The report comes before the dataset is deleted: removing a million
# files takes minutes of its own.
python3 - "$results" "$(python3 -c "import time; print(time.time() - $started)")" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
images = [r for r in rows if r["label"] == "limits" and r["phase"] == "image-read"]
def line(name, val, limit="", pct=None, against=""):
    p = f"{pct:.0f}%" if pct is not None else ""
    print(f"{name:46} {val:>10} {limit:>10} {p:>8}  {against}")
hdr = f"{'measure':46} {'value':>10} {'limit':>10} {'% of it':>8}  judged against"
gen = next(r for r in rows if r["phase"] == "gen-files")
lstat = next(r for r in rows if r["label"] == "limits" and r["phase"] == "lstat")
readh = next(r for r in rows if r["label"] == "limits" and r["phase"] == "read-hash")
cores = lstat["parallel"]
print(f"\nHaven at scale: {gen['files']:,} small files ({gen['bytes']/1e6:.0f} MB, under 2 KiB each) and sparse disk images;")
print(f"each backup on its own embedded PostgreSQL and filesystem store. RSS is the Haven process's (PostgreSQL runs apart);")
print(f"CPU is the whole phase's, PostgreSQL included. Generated in {gen['seconds']:.0f} s ({gen['files_per_s']:.0f} files/s).")
print(hdr)
line(f"limit: lstat-only walk, {cores} cores (files/s)", f"{lstat['files_per_s']:.0f}")
line(f"limit: open+read+BLAKE3, {cores} cores (files/s)", f"{readh['files_per_s']:.0f}")
def files_backup(label, name, limit, limit_name):
    r = next(x for x in rows if x["label"] == label)
    ix = r["index"]
    line(f"{name}: time (s)", f"{r['seconds']:.1f}")
    line(f"  files/s", f"{r['files_per_s']:.0f}", f"{limit['files_per_s']:.0f}", 100*r['files_per_s']/limit['files_per_s'], limit_name)
    line(f"  CPU, Haven + PostgreSQL (s)", f"{r['cpu_s']:.1f}")
    line(f"  peak RSS / peak Go heap (MiB)", f"{r['peak_rss_mib']:.0f} / {r['peak_heap_mib']:.0f}")
    line(f"  index: chunk rows", f"{ix['chunks']:,}")
    line(f"  index: repo_chunks, with indexes (MB)", f"{ix['chunks_table_bytes']/1e6:.1f}")
    line(f"  index: repo_packs (MB)", f"{ix['packs_table_bytes']/1e6:.2f}")
    line(f"  store: packs / pack bytes (MB)", f"{ix['packs']} / {ix['pack_bytes']/1e6:.0f}")
    line(f"  store: manifests / file data (MB)", f"{ix['manifest_bytes']/1e6:.1f} / {ix['data_bytes']/1e6:.0f}")
    return r
small = files_backup("files-small", f"full backup, {next(x for x in rows if x['label']=='files-small')['files']:,} files", readh, "open+read+BLAKE3 (all files)")
full = files_backup("files-full", f"full backup, {next(x for x in rows if x['label']=='files-full')['files']:,} files", readh, "open+read+BLAKE3")
same = next(x for x in rows if x["label"] == "files-unchanged")
line("unchanged re-backup: time (s)", f"{same['seconds']:.1f}")
line("  files/s", f"{same['files_per_s']:.0f}", f"{lstat['files_per_s']:.0f}", 100*same['files_per_s']/lstat['files_per_s'], "lstat-only walk")
line("  CPU, Haven + PostgreSQL (s)", f"{same['cpu_s']:.1f}")
line("  peak RSS / peak Go heap (MiB)", f"{same['peak_rss_mib']:.0f} / {same['peak_heap_mib']:.0f}")
line("  files reused", f"{same['reused_files']:,}")
rs, wl = next(x for x in rows if x["label"] == "restore"), next(x for x in rows if x["label"] == "write-limit")
line(f"restore of {rs['files']:,} files from the big point (s)", f"{rs['seconds']:.1f}")
line("  files/s", f"{rs['files_per_s']:.0f}", f"{wl['files_per_s']:.0f}", 100*rs['files_per_s']/wl['files_per_s'], f"write anew, no fsync, {wl['parallel']} cores")
line("  peak RSS / peak Go heap (MiB)", f"{rs['peak_rss_mib']:.0f} / {rs['peak_heap_mib']:.0f}")
print(f"\nSparse disk images through disk.Capture, read whole (1 MiB blocks; holes recorded, never stored)")
print(hdr)
img_rows = {}
for lbl in ("image-small", "image-mid", "image-big"):
    r = next(x for x in rows if x["label"] == lbl)
    l = next(x for x in images if x["bytes"] == r["bytes"])
    gib = r["bytes"] / (1 << 30)
    img_rows[lbl] = r
    line(f"{gib:.0f} GiB image, {l['read_bytes']/(1<<20):.0f} MiB allocated: time (s)", f"{r['seconds']:.1f}")
    line("  MB/s of the image", f"{r['mb_per_s']:.0f}", f"{l['mb_per_s']:.0f}", 100*r['mb_per_s']/l['mb_per_s'], f"read whole, {l['parallel']} cores")
    line("  CPU, Haven + PostgreSQL (s)", f"{r['cpu_s']:.1f}")
    line("  peak RSS / peak Go heap (MiB)", f"{r['peak_rss_mib']:.0f} / {r['peak_heap_mib']:.0f}")
    line("  manifest / data stored (MB)", f"{r['index']['manifest_bytes']/1e6:.2f} / {r['index']['data_bytes']/1e6:.0f}")
print(f"\nDoes memory grow? Peak RSS of the large run over the smaller one ({full['files']/small['files']:.0f}x the files; "
      f"{img_rows['image-big']['bytes']/img_rows['image-mid']['bytes']:.1f}x the image, past the {img_rows['image-small']['bytes']>>30} GiB one, which does not fill the pipeline)")
def grows(name, a, b):
    ratio = b['peak_rss_mib'] / a['peak_rss_mib']
    hr = b['peak_heap_mib'] / a['peak_heap_mib']
    verdict = "bounded" if ratio < 1.25 else "GROWS"
    print(f"{name:46} {a['peak_rss_mib']:>6.0f} -> {b['peak_rss_mib']:<6.0f} MiB  x{ratio:.2f} (Go heap x{hr:.2f})  {verdict}")
grows("files: full backup", small, full)
grows("disk image: full backup", img_rows["image-mid"], img_rows["image-big"])
print(f"\nmake bench-scale took {float(sys.argv[2]):.0f} s before deleting its files")
PY
rm -rf "$ds"
