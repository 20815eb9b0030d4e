#!/usr/bin/env bash
# Python environment for the reference and benchmark scripts (OpenCV, NumPy, Pillow).
# The tests do not need it: the references they compare against are committed.
set -euo pipefail
cd "$(dirname "$0")"
source lib.sh
need_packages python3-venv
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
echo "ready: scripts/.venv/bin/python"
