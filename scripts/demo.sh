#!/usr/bin/env bash
# Builds imgproc and runs the example manifest (examples/jobs.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_packages "${IMGPROC_PACKAGES[@]}"
need_rust
cargo build --release --locked
rm -rf examples/out
target/release/imgproc --manifest examples/jobs.json --report examples/out/report.json "$@"
echo
echo "Outputs are in $(pwd)/examples/out/ (report: examples/out/report.json):"
find examples/out -type f | sort | sed 's/^/  /'
