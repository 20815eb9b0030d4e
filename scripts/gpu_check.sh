#!/usr/bin/env bash
# On a machine with a GPU: the OpenCL parity tests on that GPU, then a timing table per
# op (CPU one thread, CPU all threads, OpenCL with transfers, OpenCL kernels only) for
# each size, written to a markdown file, and the crossover: from which size the device,
# transfers included, beats all the CPU's threads, per op and for `auto`'s threshold
# (AUTO_MIN_MEGAPIXELS in src/pipeline.rs). Aim: under five minutes.
#
#   scripts/gpu_check.sh [OUT.md] [SIZES_MP...]   (default: gpu_check.md 0.5 1 2 4 24 100)
#
# ITERS (default 3) sets the runs per op; the CPU and the device alternate, and each
# figure is the median. Without a GPU it measures device 0 (PoCL in CI).
#
# IMGPROC_PREBUILT=DIR runs the binaries that scripts/gpu_bundle.sh packed into DIR
# instead of building: for a GPU machine with no Rust, no registries and no ../shared.
# There the MPI parity test runs only if mpirun exists (it says so when it does not).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check.md}
iters=${ITERS:-3}
shift || true
sizes=("$@")
[ $# -gt 0 ] || sizes=(0.5 1 2 4 24 100)

if [ -n "${IMGPROC_PREBUILT:-}" ]; then
    pre=$(cd "$IMGPROC_PREBUILT" && pwd)
    export LD_LIBRARY_PATH="$pre/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    imgproc=$pre/bin/imgproc
    bench=$pre/bin/optable
    src=$pre/source.jpg
    # The tests read tests/fixtures where they were compiled: point that path here.
    built=$(cat "$pre/manifest_dir")
    if [ "$built" != "$PWD" ] && [ ! -e "$built" ]; then
        mkdir -p "$(dirname "$built")"
        ln -s "$PWD" "$built"
    fi
    # No ICD file for the GPU's OpenCL driver: point ocl-icd at the driver's library.
    if ! grep -qsi nvidia /etc/OpenCL/vendors/*.icd; then
        lib=$( (ldconfig -p | awk '/libnvidia-opencl\.so\.1/ {print $NF}';
                find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libnvidia-opencl.so.1' 2>/dev/null) | head -1 || true)
        if [ -n "$lib" ]; then
            mkdir -p "$pre/vendors"
            echo "$lib" > "$pre/vendors/nvidia.icd"
            export OCL_ICD_VENDORS=$pre/vendors
        fi
        echo "OpenCL driver library: ${lib:-none found}"
    fi
    nvidia-smi -L 2>/dev/null || true
    run_tests() {
        local skip=()
        if ! command -v mpirun >/dev/null 2>&1; then
            echo "no mpirun on this machine: not running workers_under_mpi_use_the_device_and_match_the_cpu"
            skip=(--skip workers_under_mpi)
        fi
        CARGO_BIN_EXE_imgproc=$imgproc timeout 600 "$pre/bin/integration" opencl --test-threads 1 "${skip[@]}"
    }
else
    source scripts/lib.sh
    need_packages "${IMGPROC_PACKAGES[@]}"
    need_rust
    cargo build --release --locked --benches --bins 2>&1 | tail -1
    imgproc=target/release/imgproc
    bench=$(ls -t target/release/deps/optable-* | grep -v '\.d$' | head -1)
    src=../shared/corpus/photos/Elephants_5640x3172.jpg
    run_tests() {
        timeout 600 cargo test --release --locked --test integration opencl -- --test-threads 1
    }
fi

"$imgproc" --list-devices
# The first GPU, else device 0.
dev=$("$imgproc" --list-devices | awk -F: '/\[GPU\]/ {print $1; exit}')
dev=${dev:-0}
echo "using OpenCL device $dev"
export IMGPROC_TEST_DEVICE=$dev
run_tests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    echo "# OpenCL check on $("$imgproc" --list-devices | sed -n "$((dev + 1))p")"
    echo
    echo "MP/s per op, median of $iters; CPU all = $(nproc) threads; OpenCL includes the upload and download, kernels does not."
} > "$out"
for mp in "${sizes[@]}"; do
    scale=$(python3 -c "print(($mp / 17.89) ** 0.5)")
    "$imgproc" -q --backend cpu --op "resize:scale=$scale,filter=area" --format png -o "$tmp/$mp" "$src"
    img=$(ls "$tmp/$mp"/*.png)
    "$bench" --image "$img" --iters "$iters" --threads 1 > "$tmp/cpu1-$mp.jsonl"
    "$bench" --image "$img" --iters "$iters" --threads "$(nproc)" --backend opencl --device "$dev" > "$tmp/cl-$mp.jsonl"
done
python3 - "$tmp" "${sizes[@]}" >> "$out" <<'PY'
import json, sys
tmp, sizes = sys.argv[1], sys.argv[2:]
load = lambda f: [json.loads(l) for l in open(f"{tmp}/{f}")]
# per size: op -> (CPU all, OpenCL with transfers or None, memory-bound)
wins = {}
for mp in sizes:
    one = {j["name"]: j["mp_s"] for j in load(f"cpu1-{mp}.jsonl") if "mp_s" in j}
    print(f"\n## {mp} MP\n\n| op | CPU 1 thread | CPU all | OpenCL | kernels | OpenCL / CPU all |\n|---|---:|---:|---:|---:|---:|")
    for c in load(f"cl-{mp}.jsonl"):
        if "cl_mp_s" not in c:
            continue
        name, g, k = c["name"], c["cl_mp_s"], c["kernel_mp_s"]
        ratio = f"{g / c['mp_s']:.2f}" if g else "-"
        fmt = lambda v: f"{v:.0f}" if v else "(CPU)"
        print(f"| {name} | {one.get(name, 0):.0f} | {c['mp_s']:.0f} | {fmt(g)} | {fmt(k)} | {ratio} |")
        if g:
            wins.setdefault(name, {"memory_bound": c["memory_bound"]})[float(mp)] = g >= c["mp_s"]

order = sorted(float(m) for m in sizes)
def from_size(ok):
    """The smallest measured size from which every larger one is ok, or None."""
    found = None
    for mp in reversed(order):
        if not ok(mp):
            break
        found = mp
    return found
mb = lambda v: f"{v:g} MP" if v is not None else "none measured"
print("\n## Crossover: OpenCL with transfers vs all CPU threads\n")
print("| op | memory-bound (auto keeps it on the CPU) | device at least as fast from |\n|---|---|---|")
for name, w in wins.items():
    print(f"| {name} | {'yes' if w['memory_bound'] else 'no'} | {mb(from_size(lambda m: w.get(m, False)))} |")
heavy = [w for w in wins.values() if not w["memory_bound"]]
if heavy:
    count = lambda m: sum(w.get(m, False) for w in heavy)
    print(f"\nOps that are not memory-bound, faster on the device, per size: "
          + ", ".join(f"{m:g} MP: {count(m)} of {len(heavy)}" for m in order))
    print(f"\nFor AUTO_MIN_MEGAPIXELS: every such op wins from {mb(from_size(lambda m: count(m) == len(heavy)))}; "
          f"most of them (over half) from {mb(from_size(lambda m: 2 * count(m) > len(heavy)))}.")
PY
cat "$out"
