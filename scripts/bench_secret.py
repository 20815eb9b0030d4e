#!/usr/bin/env python3
"""What --secret costs: the medium photo batch (the corpus photos, blur -> JPEG q90, as in
bench_peers.py) across the three simulated hosts of ../shared/netns, without and with
--secret, alternating run by run so that both see the same machine. Rank 0 sends every
input over the bridge and receives every output (no --shared-fs), so every byte of the
batch is sealed twice and opened twice.

Prints the median wall time of each (the run's own, from its report, and the whole
mpirun command's), throughput in MB of input per second, and the ratio. Needs root,
mpirun and target/release/imgproc; brings the cluster up if it is not, and down again.

    cargo build --release && scripts/bench_secret.py [--rounds 7] [--copies 2]
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "imgproc")
NET = os.path.join(ROOT, "..", "shared", "netns")
PHOTOS = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "corpus", "photos", "*.jpg")))


def run(ws, out, extra):
    report = os.path.join(ws, out + ".json")
    cmd = [os.path.join(NET, "mpirun"), "--hostfile", os.path.join(NET, "hostfile"), "-np", "3",
           BIN, "-q", "-m", "jobs.json", "-o", out, "--report", report] + extra
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ws, check=True, stderr=subprocess.DEVNULL)
    outer = time.perf_counter() - t
    with open(report) as f:
        inner = json.load(f)["wall_seconds"]
    shutil.rmtree(os.path.join(ws, out))
    return inner, outer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--copies", type=int, default=2, help="each photo this many times")
    args = ap.parse_args()
    ws = tempfile.mkdtemp()
    up = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    started = "h3" not in up
    if started:
        subprocess.run([os.path.join(NET, "cluster"), "up", "3"], check=True)
    try:
        os.makedirs(os.path.join(ws, "images"))
        size = 0
        for p in PHOTOS:
            stem = os.path.splitext(os.path.basename(p))[0]
            for c in range(args.copies):
                shutil.copy(p, os.path.join(ws, "images", f"{stem}_{c}.jpg"))
                size += os.path.getsize(p)
        with open(os.path.join(ws, "jobs.json"), "w") as f:
            json.dump({"version": 1, "jobs": [{"input": "images/*.jpg", "ops": ["blur"],
                                                "output": "{stem}.jpg", "format": "jpeg",
                                                "quality": 90}]}, f)
        subprocess.run([BIN, "keygen", os.path.join(ws, "key")], check=True)
        # One warm-up of each, not counted (page cache, Open MPI's first start).
        run(ws, "warm", [])
        run(ws, "warm", ["--secret", "key"])
        times = {"plain": [], "sealed": []}
        for i in range(args.rounds):
            order = [("plain", []), ("sealed", ["--secret", "key"])]
            if i % 2:
                order.reverse()
            for name, extra in order:
                times[name].append(run(ws, name, extra))
        n = len(PHOTOS) * args.copies
        print(f"medium batch: {n} photos ({size / 1e6:.0f} MB), blur -> JPEG q90, "
              f"mpirun -np 3 over ../shared/netns (rank i on h(i+1)), median of {args.rounds}, alternating")
        print(f"{'':10} {'run s':>8} {'MB/s':>8} {'mpirun s':>9}")
        med = {}
        for name, t in times.items():
            inner = statistics.median(a for a, _ in t)
            outer = statistics.median(b for _, b in t)
            med[name] = (inner, outer)
            print(f"{name:10} {inner:8.3f} {size / 1e6 / inner:8.1f} {outer:9.3f}")
        (pi, po), (si, so) = med["plain"], med["sealed"]
        print(f"sealed throughput / plain: {pi / si:.3f} (run), {po / so:.3f} (whole mpirun)")
        print("per round (plain run s, sealed run s):",
              ", ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in zip(times["plain"], times["sealed"])))
    finally:
        shutil.rmtree(ws, ignore_errors=True)
        if started:
            subprocess.run([os.path.join(NET, "cluster"), "down"])


if __name__ == "__main__":
    main()
