#!/usr/bin/env python3
"""Fault-tolerance figures, measured side by side in one invocation (medians).

    scripts/bench_faults.py [--rounds 3] [--before OLD_BINARY] [--tiny 20000]

1. Rank 0's CPU per item on many tiny items under `mpirun -np 3` (this binary, and
   OLD_BINARY alternating with it when given), with wall time and load balance.
2. A run that loses one of three workers halfway (kill -9 under `imgproc launch`)
   against the clean run, with the bound clean x 1.5 + --worker-timeout.
3. One worker throttled to 3% of a core (SIGSTOP/SIGCONT, 3 ms of every 100 ms) among
   three, against a run with the other two workers only.

Needs Open MPI (scripts/test.sh installs it) and ../shared/corpus. Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "imgproc")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "photos")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def run(cmd, cwd, **kw):
    t = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kw)
    return p, time.monotonic() - t


def tiny(args, work):
    d = os.path.join(work, "tiny")
    os.makedirs(os.path.join(d, "in"))
    seed = os.path.join(d, "seed")
    subprocess.run([BIN, "--op", "crop:x=100,y=100,width=64,height=64", "--format", "png",
                    "-o", seed, "-q", os.path.join(CORPUS, "Aqua.jpg")], check=True)
    src = os.path.join(seed, "Aqua.png")
    for i in range(args.tiny):
        shutil.copyfile(src, os.path.join(d, "in", f"t{i}.png"))
    with open(os.path.join(d, "jobs.json"), "w") as f:
        json.dump({"version": 1, "jobs": [{"input": "in/*.png", "ops": ["invert"],
                                           "output": "{stem}.png"}]}, f)
    bins = [("this", BIN)] + ([("before", args.before)] if args.before else [])
    res = {name: [] for name, _ in bins}
    for r in range(args.rounds):
        for name, b in (bins if r % 2 == 0 else bins[::-1]):
            out = os.path.join(d, "out")
            shutil.rmtree(out, ignore_errors=True)
            rep = os.path.join(d, "r.json")
            p, wall = run(["mpirun", "--oversubscribe", "-np", "3", b, "-m", "jobs.json", "-o",
                           "out", "-q", "--report", rep], d)
            if p.returncode != 0:
                sys.exit(f"{name}: exit {p.returncode}: {p.stderr.decode()[-2000:]}")
            rj = json.load(open(rep))
            cpu0 = rj["ranks_detail"][0]["cpu_seconds"]
            res[name].append((wall, cpu0, rj["totals"]["load_balance"]))
    print(f"\n## {args.tiny} tiny items (64x64 PNG, invert), mpirun -np 3, medians of {args.rounds}")
    print("| binary | wall s | rank-0 CPU s | rank-0 CPU per item (us) | load_balance |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in bins:
        w, c, lb = (statistics.median(x[i] for x in res[name]) for i in range(3))
        print(f"| {name} | {w:.2f} | {c:.2f} | {c / args.tiny * 1e6:.0f} | {lb:.2f} |")


def photos(work, copies, name):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "in"))
    for name in sorted(os.listdir(CORPUS)):
        if name.endswith(".jpg"):
            for c in range(copies):
                shutil.copyfile(os.path.join(CORPUS, name),
                                os.path.join(d, "in", f"{name[:-4]}_{c}.jpg"))
    with open(os.path.join(d, "jobs.json"), "w") as f:
        json.dump({"version": 1, "jobs": [{"input": "in/*.jpg", "ops": ["blur", "sharpen"],
                                           "output": "{stem}.jpg"}]}, f)
    return d


def rank_pid(marker, rank):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if marker in cmd and " launch " not in cmd and cmd.startswith(BIN) and \
                f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(pid)
    return None


def timed_launch(d, np, out, timeout, fault=None):
    """Runs `imgproc launch`; `fault(marker)` runs in a thread during the run."""
    shutil.rmtree(os.path.join(d, out), ignore_errors=True)
    cmd = [BIN, "launch", "--oversubscribe", "-np", str(np), "--", "-m", "jobs.json", "-o",
           out, "-q", "--worker-timeout", str(timeout), "--report", out + ".json"]
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=d, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    th = None
    if fault:
        th = threading.Thread(target=fault, args=(f"-o {out} ",))
        th.start()
    _, err = p.communicate()
    wall = time.monotonic() - t
    if th:
        th.join()
    if p.returncode != 0:
        sys.exit(f"launch exit {p.returncode}: {err.decode()[-2000:]}")
    if os.environ.get("BENCH_VERBOSE"):
        r = json.load(open(os.path.join(d, out + ".json")))
        print(err.decode()[-3000:], file=sys.stderr)
        print(f"  {out}: launch {wall:.2f} s, rank 0 {r['wall_seconds']:.2f} s, backups "
              f"{r['totals']['backup_copies']}, lost {r['lost_ranks']}", file=sys.stderr)
    return wall


def lost(args, work):
    d = photos(work, 2, "lost")
    timeout = 3
    clean, faulted = [], []
    for r in range(args.rounds):
        c = timed_launch(d, 4, "clean", timeout)
        half = c / 2

        def kill(marker, half=half):
            time.sleep(half)
            pid = rank_pid(marker, 2)
            if pid:
                os.kill(pid, signal.SIGKILL)
        f = timed_launch(d, 4, "lost", timeout, kill)
        clean.append(c)
        faulted.append(f)
    c, f = statistics.median(clean), statistics.median(faulted)
    print(f"\n## One of three workers killed (kill -9) halfway, imgproc launch -np 4, "
          f"--worker-timeout {timeout}, medians of {args.rounds}")
    print("| clean s | one worker lost s | bound: clean x 1.5 + timeout | within |")
    print("|---:|---:|---:|---|")
    print(f"| {c:.2f} | {f:.2f} | {c * 1.5 + timeout:.2f} | {'yes' if f <= c * 1.5 + timeout else 'NO'} |")


def slow(args, work):
    d = photos(work, 2, "slow")
    without, throttled = [], []
    for r in range(args.rounds):
        w = timed_launch(d, 3, "two", 30)

        def throttle(marker, out=os.path.join(d, "three")):
            # From the first output on: MPI_Init is collective, so a rank slow from the
            # start delays every rank's start-up, out of the scheduler's reach.
            pid = None
            while pid is None or not (os.path.isdir(out) and os.listdir(out)):
                pid = rank_pid(marker, 3)
                time.sleep(0.01)
            try:
                while True:
                    os.kill(pid, signal.SIGCONT)
                    time.sleep(0.003)
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.097)
            except ProcessLookupError:
                pass
        t = timed_launch(d, 4, "three", 30, throttle)
        without.append(w)
        throttled.append(t)
    w, t = statistics.median(without), statistics.median(throttled)
    print(f"\n## One worker at 3% of a core (SIGSTOP/SIGCONT 97/3 ms, from the first output "
          f"on) among three, against the two others alone, medians of {args.rounds}")
    print("| two workers s | three, one throttled s | ratio |")
    print("|---:|---:|---:|")
    print(f"| {w:.2f} | {t:.2f} | {t / w:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="an older imgproc binary to compare on tiny items")
    ap.add_argument("--tiny", type=int, default=20000)
    ap.add_argument("--only", choices=["tiny", "lost", "slow"])
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as work:
        for name, f in [("tiny", tiny), ("lost", lost), ("slow", slow)]:
            if args.only in (None, name):
                f(args, work)


if __name__ == "__main__":
    main()
