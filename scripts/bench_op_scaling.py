#!/usr/bin/env python3
"""Each op's thread scaling next to what the machine itself allows.

Issue 13 asks two threads to run a large image at least 1.8x one thread's speed. On a
shared VM the two-thread column of `bench_vs_opencv.py` moves by a third between runs,
and a memory-bound op cannot double where the memory system does not. This script
tells the two apart. Per op and channel count, round after round, alternating:

- `alone`: one one-thread `optable --serve` server, pinned to the first CPU;
- `apart`: N one-thread servers at once, each pinned to its own CPU and holding its
  own copy of the image (independent processes: nothing shared but the machine), as
  the sum of their rates over `alone`. N.0 means the machine gives every CPU the
  speed of one alone; less is the machine's own limit for this op;
- `Nt`: one N-thread server over `alone`, the figure the issue asks about;
- `Nt/apart`: what the split inside one process loses against independent processes.

Medians over the rounds. The image is the 12 MP crop `bench_vs_opencv.py` uses, at the
channel counts asked for. Needs `taskset` (util-linux) and N CPUs.

    scripts/.venv/bin/python scripts/bench_op_scaling.py --channels 1,4 [--threads 2] [--only resize] [--rounds 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import cv2
import numpy as np
from PIL import Image

import bench_vs_opencv as bench

ROOT = bench.ROOT


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="N: threads of the pooled server")
    ap.add_argument("--channels", default="1", help="comma-separated channel counts, e.g. 1,4")
    ap.add_argument("--only", help="only the ops whose string starts with this")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per op")
    ap.add_argument("--iters", type=int, default=9, help="timed runs of an op per server and round")
    ap.add_argument("--warmup-ms", type=int, default=150,
                    help="untimed runs of an op for this long before each timing")
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()
    n = args.threads
    cpus = sorted(os.sched_getaffinity(0))
    if n < 2 or len(cpus) < n:
        ap.error(f"--threads {n} needs at least 2 and at most the {len(cpus)} CPUs this process may use")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    src = cv2.imread(os.path.join(bench.CORPUS, "photos", "Elephants_5640x3172.jpg"))
    rgb = np.ascontiguousarray(cv2.cvtColor(src[:3000, :4000], cv2.COLOR_BGR2RGB))
    subprocess.run(["cargo", "bench", "-q", "--bench", "optable", "--no-run"], cwd=ROOT, check=True,
                   capture_output=True)
    optable = ["cargo", "bench", "-q", "--bench", "optable", "--"]
    names = subprocess.run(optable + ["--names"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    if args.only:
        names = [x for x in names if x.startswith(args.only)]
    tmp = tempfile.mkdtemp()
    lines = [f"| op | ch | 1t alone MP/s | {n} x 1t apart / alone | {n}t / alone | {n}t / apart |",
             "|---|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for cn in [int(c) for c in args.channels.split(",")]:
        png = os.path.join(tmp, f"scaling{cn}.png")
        Image.fromarray(bench.with_channels(rgb, cn), {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[cn]).save(
            png, compress_level=1)

        def server(threads, cpu_list):
            pin = ["taskset", "-c", ",".join(str(c) for c in cpu_list)]
            return subprocess.Popen(pin + optable + ["--image", png, "--threads", str(threads), "--serve"],
                                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        alone = server(1, cpus[:1])
        apart = [server(1, [c]) for c in cpus[:n]]
        pooled = server(n, cpus[:n])

        def ask(p, op):
            p.stdin.write(f"{op} {args.iters} {args.warmup_ms}\n")
            p.stdin.flush()

        def rate(p):
            return json.loads(p.stdout.readline())["mp_s"]

        for op in names:
            one, sums, pool = [], [], []
            for _ in range(args.rounds):
                ask(alone, op)
                one.append(rate(alone))
                if one[-1] is None:  # the op does not take this channel count
                    break
                for p in apart:  # all asked before any is read: they run at once
                    ask(p, op)
                sums.append(sum(rate(p) for p in apart) / one[-1])
                ask(pooled, op)
                pool.append(rate(pooled) / one[-1])
            if one[-1] is None:
                continue
            a, s, t = statistics.median(one), statistics.median(sums), statistics.median(pool)
            line = f"| {op} | {cn} | {a:.0f} | {s:.2f} | {t:.2f} | {t / s:.2f} |"
            lines.append(line)
            print(line, flush=True)
        for p in [alone, pooled] + apart:
            p.stdin.close()
            p.wait()
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
