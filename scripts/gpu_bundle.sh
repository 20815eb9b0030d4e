#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs into .gpu/ (git-ignored), for a GPU machine with
# no Rust, no package registries and no ../shared: this workplace's device machine.
# Build here, then run there, carrying .gpu:
#
#   scripts/gpu_bundle.sh                                    (here)
#   IMGPROC_PREBUILT=.gpu scripts/gpu_check.sh $OUT/gpu_check.md   (there, carry [".gpu"])
#
# .gpu/bin: imgproc, the optable bench and the integration-test binary, without debug
# info; .gpu/lib: the shared libraries they load that are not glibc's (Open MPI's, and
# ocl-icd's libOpenCL.so.1, which is loaded at run time); .gpu/source.jpg: the photo the
# tables are made from; .gpu/manifest_dir: where the tests were compiled (they read
# tests/fixtures from there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_packages "${IMGPROC_PACKAGES[@]}"
need_rust
src=../shared/corpus/photos/Elephants_5640x3172.jpg
[ -f "$src" ] || { echo "gpu_bundle: $src is missing (the corpus beside this repository)" >&2; exit 1; }

cargo build --release --locked --benches --bins 2>&1 | tail -1
tests=$(cargo test --release --locked --test integration --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for l in sys.stdin:
    j = json.loads(l)
    if j.get("reason") == "compiler-artifact" and j.get("executable") and j["target"]["name"] == "integration":
        print(j["executable"])')
bench=$(cargo bench --locked --bench optable --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for l in sys.stdin:
    j = json.loads(l)
    if j.get("reason") == "compiler-artifact" and j.get("executable") and j["target"]["name"] == "optable":
        print(j["executable"])')

rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib
strip --strip-debug -o .gpu/bin/imgproc target/release/imgproc
strip --strip-debug -o .gpu/bin/optable "$bench"
strip --strip-debug -o .gpu/bin/integration "$tests"
# Every library the binaries link, but glibc's own (the other machine has a newer one).
ldd .gpu/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" .gpu/lib/; done
cp -L "$(ldconfig -p | awk '/libOpenCL\.so\.1 .*x86-64/ {print $NF; exit}')" .gpu/lib/
cp "$src" .gpu/source.jpg
pwd > .gpu/manifest_dir
du -sh .gpu
ls -la .gpu/bin .gpu/lib
