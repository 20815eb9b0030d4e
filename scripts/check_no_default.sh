#!/usr/bin/env bash
# Builds imgproc without its default features (no MPI, no OpenCL) and checks that the
# result runs alone: no libmpi or libOpenCL linked, the same output bytes as the default
# build on the CPU, and clear errors where MPI or OpenCL is asked for. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/no-default
cargo build --locked --no-default-features --target-dir "$dir"
cargo clippy --locked --no-default-features --all-targets --target-dir "$dir" -- -D warnings
cargo build --locked
lean="$dir/debug/imgproc" full=target/debug/imgproc
if ldd "$lean" | grep -Ei 'libmpi|libOpenCL'; then
    echo "check_no_default: the lean build links MPI or OpenCL" >&2; exit 1
fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
for bin in lean full; do
    "${!bin}" -q --backend cpu --format png -o "$work/$bin" \
        --op pad:top=3,left=2,value=9 --op blur --op canny tests/fixtures/*.png
done
diff -r -x .imgproc-journal "$work/lean" "$work/full"
expect_fail() { # what, command...: must exit 2 and say "built without"
    local what="$1"; shift
    if "$@" >"$work/out" 2>&1; then echo "check_no_default: $what succeeded" >&2; exit 1; fi
    grep -q "built without" "$work/out" || { cat "$work/out" >&2; exit 1; }
}
expect_fail "--backend opencl" "$lean" --backend opencl --op blur -o "$work/x" tests/fixtures/tiny_rgb.png
expect_fail "a run under an MPI launcher" env OMPI_COMM_WORLD_SIZE=2 "$lean" --op blur -o "$work/x" tests/fixtures/tiny_rgb.png
echo "check_no_default: the build without MPI and OpenCL runs alone and writes the same bytes"
