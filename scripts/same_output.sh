#!/usr/bin/env bash
# Checks that two imgproc binaries write byte-identical outputs: the example manifest,
# and every op (defaults and the variants below) on the test fixtures and a slice of the
# corpus, on the CPU and on the OpenCL device, plus the text of --list-ops and --dry-run.
# Use it around a change that must not change behaviour:
#
#     scripts/same_output.sh OLD_BIN [NEW_BIN]      # NEW_BIN: target/release/imgproc
#
# NEW_OPS="pad ..." names ops the newer binary adds on purpose: their entries are left
# out of its --list-ops output before the comparison.
# Prints one line per comparison and exits 1 at the first difference.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
old="$(realpath "$1")"
new="$(realpath "${2:-$here/target/release/imgproc}")"
corpus="$here/../shared/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ops=(grayscale invert blur "blur:ksize=0,sigma=2" canny "canny:low=30,high=90" brighten darken
    threshold "threshold:value=100.5" hsv custom_processing "hsv:hue=30,saturation=-20,value=10"
    sharpen "sharpen:sigma=2,amount=0.5" median "median:ksize=7" box_blur "box_blur:ksize=9"
    sobel "sobel:direction=x" "resize:width=61,filter=nearest" "resize:width=61"
    "resize:width=61,filter=bicubic" "resize:width=61,filter=lanczos3" "resize:scale=0.5,filter=area"
    "resize:scale=1.7" rotate "rotate:angle=180" "rotate:angle=270" flip "flip:axis=v"
    "crop:x=3,y=2,width=20,height=17" equalize gamma contrast erode "dilate:ksize=5,iterations=2")
inputs=("$here"/tests/fixtures/*.png "$corpus"/pngsuite/basn*.png "$corpus"/pngsuite/basi*.png
    "$corpus"/photos/FreshFlower.jpg "$corpus"/graphics/wood-d.webp)

mkdir "$work/in"
cp "${inputs[@]}" "$work/in/"

# One job per op: every input through it, written as PNG (lossless) under op index N.
{
    echo '{"version": 1, "jobs": ['
    for i in "${!ops[@]}"; do
        [ "$i" -gt 0 ] && echo ','
        printf '{"input": "%s/in/*", "ops": ["%s"], "output": "%02d/{stem}.png"}' "$work" "${ops[$i]}" "$i"
    done
    echo ', {"input": "'"$corpus"'/photos/FreshFlower.jpg", "ops": ["blur", "sharpen"], "output": "jpeg/{stem}.jpg", "quality": 85}'
    echo ']}'
} >"$work/all.json"

compare() { # label dir_a dir_b (journals, which hold times, are left out)
    if diff -r -x .imgproc-journal "$2" "$3" >"$work/diff" 2>&1; then
        echo "same: $1 ($(find "$2" -type f ! -name .imgproc-journal | wc -l) files)"
    else
        echo "DIFFERENT: $1"; head -20 "$work/diff"; exit 1
    fi
}

for side in old new; do
    bin="${!side}"
    mkdir -p "$work/$side/text"
    "$bin" --list-ops >"$work/$side/text/list-ops.txt"
    "$bin" --list-ops --json >"$work/$side/text/list-ops.json"
    (cd "$here/examples" && "$bin" --manifest jobs.json --dry-run --backend cpu >"$work/$side/text/dry-run.txt" 2>&1)
    (cd "$here/examples" && "$bin" --manifest jobs.json -o "$work/$side/example" -q --backend cpu)
    for backend in cpu opencl; do
        "$bin" --manifest "$work/all.json" -o "$work/$side/$backend" -q --backend "$backend" || true
    done
done
python3 - "$work/new/text" ${NEW_OPS:-} <<'PY'
import json, sys
d, new = sys.argv[1], set(sys.argv[2:])
p = d + "/list-ops.json"
ops = [o for o in json.load(open(p)) if o["name"] not in new]
open(p, "w").write(json.dumps(ops, indent=2) + "\n")
p = d + "/list-ops.txt"
keep, out = True, []
for line in open(p):
    if line[:1] not in (" ", "\t", "\n", ""):
        keep = line.strip() not in new
    if keep:
        out.append(line)
open(p, "w").write("".join(out))
PY
python3 -c 'import json,sys; p=sys.argv[1]; t=json.dumps(json.load(open(p)), indent=2); open(p,"w").write(t + "\n")' "$work/old/text/list-ops.json"
compare "--list-ops, --list-ops --json, --dry-run text" "$work/old/text" "$work/new/text"
compare "example manifest" "$work/old/example" "$work/new/example"
compare "every op on fixtures and corpus, CPU" "$work/old/cpu" "$work/new/cpu"
compare "every op on fixtures and corpus, OpenCL" "$work/old/opencl" "$work/new/opencl"
