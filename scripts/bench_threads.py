#!/usr/bin/env python3
"""Batch speed-up with threads: the corpus photos through one pipeline with
--threads 1 and --threads N, alternating runs, median wall time of each (from the
JSON report), and the ratio. Standard library only.

    cargo build --release && scripts/bench_threads.py [--threads 2] [--runs 3] [--ops blur custom_processing]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, photos, ops, threads, out):
    report = os.path.join(out, "report.json")
    cmd = [binary, "-q", "--threads", str(threads), "-o", out, "--report", report]
    for op in ops:
        cmd += ["--op", op]
    subprocess.run(cmd + photos, check=True)
    with open(report) as f:
        r = json.load(f)
    return r["wall_seconds"], r["totals"]["megapixels"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ops", nargs="+", default=["blur", "custom_processing"])
    args = ap.parse_args()
    binary = os.path.join(ROOT, "target", "release", "imgproc")
    photos = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "corpus", "photos", "*.jpg")))
    times = {1: [], args.threads: []}
    mp = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for t in (1, args.threads):
                out = os.path.join(tmp, f"t{t}-{i}")
                wall, mp = run(binary, photos, args.ops, t, out)
                times[t].append(wall)
    one, many = statistics.median(times[1]), statistics.median(times[args.threads])
    print(f"{len(photos)} corpus photos, {mp:.1f} MP, ops {' '.join(args.ops)}, median of {args.runs}")
    print(f"--threads 1: {one:.2f} s ({mp / one:.1f} MP/s)")
    print(f"--threads {args.threads}: {many:.2f} s ({mp / many:.1f} MP/s)")
    print(f"speed-up: {one / many:.2f}x")


if __name__ == "__main__":
    main()
