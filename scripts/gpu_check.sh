#!/usr/bin/env bash
# On a machine with a GPU: the OpenCL parity tests on that GPU, then a timing table per
# op (CPU one thread, CPU all threads, OpenCL with transfers, OpenCL kernels only) for
# 4, 24 and 100 MP images, written to a markdown file. Aim: under five minutes.
#
#   scripts/gpu_check.sh [OUT.md] [SIZES_MP...]      (default: gpu_check.md 4 24 100)
#
# ITERS (default 3) sets the runs per op; the CPU and the device alternate, and each
# figure is the median. Without a GPU it measures device 0 (PoCL in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_packages "${IMGPROC_PACKAGES[@]}"
need_rust
out=${1:-gpu_check.md}
iters=${ITERS:-3}
shift || true
sizes=("${@:-4 24 100}")
[ $# -gt 0 ] || sizes=(4 24 100)

cargo build --release --locked --benches --bins 2>&1 | tail -1
target/release/imgproc --list-devices
# The first GPU, else device 0.
dev=$(target/release/imgproc --list-devices | awk -F: '/\[GPU\]/ {print $1; exit}')
dev=${dev:-0}
echo "using OpenCL device $dev"
IMGPROC_TEST_DEVICE=$dev timeout 600 cargo test --release --locked --test integration opencl -- --test-threads 1

bench=$(ls -t target/release/deps/optable-* | grep -v '\.d$' | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=../shared/corpus/photos/Elephants_5640x3172.jpg
{
    echo "# OpenCL check on $(target/release/imgproc --list-devices | sed -n "$((dev + 1))p")"
    echo
    echo "MP/s per op, median of $iters; CPU all = $(nproc) threads; OpenCL includes the upload and download, kernels does not."
} > "$out"
for mp in "${sizes[@]}"; do
    scale=$(python3 -c "print(($mp / 17.89) ** 0.5)")
    target/release/imgproc -q --backend cpu --op "resize:scale=$scale,filter=area" --format png -o "$tmp/$mp" "$src"
    img=$(ls "$tmp/$mp"/*.png)
    "$bench" --image "$img" --iters "$iters" --threads 1 > "$tmp/cpu1.jsonl"
    "$bench" --image "$img" --iters "$iters" --threads "$(nproc)" --backend opencl --device "$dev" > "$tmp/cl.jsonl"
    python3 - "$tmp/cpu1.jsonl" "$tmp/cl.jsonl" "$mp" >> "$out" <<'PY'
import json, sys
one = {j["name"]: j for j in map(json.loads, open(sys.argv[1])) if "mp_s" in j}
cl = {j["name"]: j for j in map(json.loads, open(sys.argv[2]))}
print(f"\n## {sys.argv[3]} MP\n\n| op | CPU 1 thread | CPU all | OpenCL | kernels | OpenCL / CPU all |\n|---|---:|---:|---:|---:|---:|")
for name, c in cl.items():
    if "cl_mp_s" not in c:
        continue
    g, k = c["cl_mp_s"], c["kernel_mp_s"]
    ratio = f"{g / c['mp_s']:.2f}" if g else "-"
    fmt = lambda v: f"{v:.0f}" if v else "(CPU)"
    print(f"| {name} | {one.get(name, {}).get('mp_s', 0):.0f} | {c['mp_s']:.0f} | {fmt(g)} | {fmt(k)} | {ratio} |")
PY
done
cat "$out"
