#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test (unit, golden
# comparisons against OpenCV references, and the real binary end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_packages "${IMGPROC_PACKAGES[@]}"
need_rust
if [ ! -d ../shared/corpus ]; then
    echo "imgproc: the tests read real images from ../shared/corpus (beside this repository); it is missing" >&2
    exit 1
fi
cargo test --locked "$@"
