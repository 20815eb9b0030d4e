#!/usr/bin/env bash
# Builds imgproc and runs the example manifest (examples/jobs.json) under mpirun:
# rank 0 deals the items to two worker ranks and writes their outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_packages "${IMGPROC_PACKAGES[@]}"
need_rust
cargo build --release --locked
rm -rf examples/out
# As root, Open MPI refuses to start without these; --oversubscribe allows more ranks than cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
timeout 300 mpirun -np 3 --oversubscribe target/release/imgproc \
    --manifest examples/jobs.json --report examples/out/report.json \
    --report examples/out/report.html "$@"
echo
echo "Outputs are in $(pwd)/examples/out/ (reports: examples/out/report.json, and"
echo "examples/out/report.html to open in a browser, its thumbnails in examples/out/report_thumbs/):"
find examples/out -path examples/out/report_thumbs -prune -o -type f -print | sort | sed 's/^/  /'
