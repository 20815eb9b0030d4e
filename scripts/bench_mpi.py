#!/usr/bin/env python3
"""The MPI figures of the distribution issue, measured side by side in one run:

1. rank 0's cost per item: CPU seconds of rank 0 / items, on many tiny images, with
   rank 0 writing the outputs and with --shared-fs (rank 0 only plans and deals);
2. load balance on the skewed corpus batch: makespan against the lower bound
   max(total work / workers, largest item), work measured by the workers themselves;
3. throughput: mpirun -np 3 (rank 0 and two workers of one thread) against the single
   process with --threads 2, on the corpus photos.

Standard library only; needs target/release/imgproc and mpirun.

    cargo build --release && scripts/bench_mpi.py [--runs 3] [--tiny 2000]
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "imgproc")
PHOTOS = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "corpus", "photos", "*.jpg")))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
OPS = ["--op", "blur", "--op", "custom_processing"]


def imgproc(np, args, out):
    report = os.path.join(out, "report.json")
    pre = ["mpirun", "-np", str(np), "--oversubscribe"] if np else []
    subprocess.run(pre + [BIN, "-q", "-o", out, "--report", report] + args, check=True, env=ENV)
    with open(report) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tiny", type=int, default=2000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    try:
        # 1. Scheduler cost per item.
        tiny_dir = os.path.join(tmp, "tiny")
        subprocess.run([BIN, "-q", "--op", "resize:width=16,height=12", "-o", tiny_dir, "--format", "png", PHOTOS[0]], check=True)
        src = os.path.join(tiny_dir, os.path.splitext(os.path.basename(PHOTOS[0]))[0] + ".png")
        for i in range(args.tiny):
            shutil.copy(src, os.path.join(tiny_dir, f"t{i:05d}.png"))
        os.remove(src)
        tiny = sorted(glob.glob(os.path.join(tiny_dir, "*.png")))
        print(f"1. {len(tiny)} tiny images, mpirun -np 3, --op invert (median of {args.runs}):")
        for mode in ([], ["--shared-fs"]):
            per_item = []
            for i in range(args.runs):
                r = imgproc(3, ["--op", "invert"] + mode + tiny, os.path.join(tmp, f"tiny-out{len(mode)}-{i}"))
                per_item.append((r["ranks_detail"][0]["cpu_seconds"], r["wall_seconds"]))
            cpu = statistics.median(c for c, _ in per_item)
            wall = statistics.median(w for _, w in per_item)
            what = "workers write outputs (--shared-fs)" if mode else "rank 0 writes every output"
            print(f"   {what}: rank 0 CPU {cpu:.3f} s = {cpu / len(tiny) * 1e6:.0f} us per item;"
                  f" wall {wall:.2f} s = {wall / len(tiny) * 1e6:.0f} us per item")

        # 2 and 3. The corpus photos.
        runs = {"np3": [], "t2": []}
        for i in range(args.runs):
            runs["np3"].append(imgproc(3, ["--threads", "1"] + OPS + PHOTOS, os.path.join(tmp, f"np3-{i}")))
            runs["t2"].append(imgproc(0, ["--threads", "2"] + OPS + PHOTOS, os.path.join(tmp, f"t2-{i}")))
        mid = lambda rs: sorted(rs, key=lambda r: r["wall_seconds"])[len(rs) // 2]
        r3, r2 = mid(runs["np3"]), mid(runs["t2"])
        workers = [d for d in r3["ranks_detail"][1:]]
        work = sum(d["busy_seconds"] for d in workers)
        largest = max((it["decode_ms"] + it["process_ms"] + it["encode_ms"]) / 1e3 for it in r3["items"])
        bound = max(work / len(workers), largest)
        print(f"2. {len(PHOTOS)} corpus photos ({r3['totals']['megapixels']:.1f} MP, 1.3 to 17.9 MP each), {' '.join(OPS)}, mpirun -np 3 --threads 1:")
        print(f"   makespan {r3['wall_seconds']:.2f} s; work {work:.2f} s over {len(workers)} workers, largest item {largest:.2f} s;"
              f" lower bound {bound:.2f} s; makespan / bound = {r3['wall_seconds'] / bound:.2f}; load_balance {r3['totals']['load_balance']:.2f}")
        for d in workers:
            print(f"   rank {d['rank']}: {d['items']} items, busy {d['busy_seconds']:.2f} s, idle {d['idle_seconds']:.2f} s")
        print(f"   rank 0: CPU {r3['ranks_detail'][0]['cpu_seconds']:.2f} s over a {r3['wall_seconds']:.2f} s run")
        print(f"3. throughput (median of {args.runs}): mpirun -np 3 {r3['totals']['megapixels_per_second']:.1f} MP/s ({r3['wall_seconds']:.2f} s)"
              f" vs single process --threads 2 {r2['totals']['megapixels_per_second']:.1f} MP/s ({r2['wall_seconds']:.2f} s):"
              f" ratio {r2['wall_seconds'] / r3['wall_seconds']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
