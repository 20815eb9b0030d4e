#!/usr/bin/env python3
"""Scaling sweep: one manifest at mpirun -np 1..N, a CSV and a plot.

Each rank count runs --runs times (median wall time from the JSON report); -np 1 is
the baseline. Writes CSV columns ranks, wall_seconds, mp_per_second, speedup,
efficiency (speedup / worker ranks, where -np 1 counts as one worker and -np N as
N - 1 since rank 0 only deals), and an SVG plot of speed-up against ranks.
Standard library only.

    scripts/scaling.py --manifest jobs.json --max-ranks 4 [--hostfile hostfiles/localhost] [--out scaling]
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(np, args, out_dir):
    report = os.path.join(out_dir, "report.json")
    cmd = ["mpirun", "-np", str(np), "--oversubscribe"]
    if args.hostfile:
        cmd += ["--hostfile", args.hostfile]
    cmd += [args.binary, "-q", "--manifest", args.manifest, "-o", out_dir, "--report", report] + args.extra
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    subprocess.run(cmd, check=True, env=env)
    with open(report) as f:
        r = json.load(f)
    return r["wall_seconds"], r["totals"]["megapixels"]


def svg(rows, path):
    w, h, m = 480, 320, 50
    n = max(r["ranks"] for r in rows)
    top = max(max(r["speedup"] for r in rows), n - 1, 1)
    x = lambda v: m + (v - 1) / max(n - 1, 1) * (w - 2 * m)
    y = lambda v: h - m - v / top * (h - 2 * m)
    pts = " ".join(f"{x(r['ranks']):.1f},{y(r['speedup']):.1f}" for r in rows)
    ideal = " ".join(f"{x(k):.1f},{y(max(k - 1, 1)):.1f}" for k in range(1, n + 1))
    ticks = "".join(f'<text x="{x(k):.1f}" y="{h - m + 18}" font-size="12" text-anchor="middle">{k}</text>' for k in range(1, n + 1))
    with open(path, "w") as f:
        f.write(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">'
            f'<rect width="{w}" height="{h}" fill="white"/>'
            f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>'
            f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>{ticks}'
            f'<text x="{w / 2}" y="{h - 10}" font-size="13" text-anchor="middle">ranks (mpirun -np)</text>'
            f'<text x="14" y="{h / 2}" font-size="13" transform="rotate(-90 14 {h / 2})" text-anchor="middle">speed-up vs -np 1</text>'
            f'<text x="{m - 8}" y="{y(top):.1f}" font-size="12" text-anchor="end">{top:.1f}</text>'
            f'<polyline points="{ideal}" fill="none" stroke="#aaa" stroke-dasharray="4"/>'
            f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
            + "".join(f'<circle cx="{x(r["ranks"]):.1f}" cy="{y(r["speedup"]):.1f}" r="3" fill="#1f77b4"/>' for r in rows)
            + "</svg>\n"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--max-ranks", type=int, default=4)
    ap.add_argument("--hostfile")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "imgproc"))
    ap.add_argument("--out", default="scaling", help="writes OUT.csv and OUT.svg")
    ap.add_argument("extra", nargs="*", help="more imgproc flags, after --")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for np in range(1, args.max_ranks + 1):
            walls = []
            mp = 0.0
            for i in range(args.runs):
                wall, mp = run(np, args, os.path.join(tmp, f"np{np}-{i}"))
                walls.append(wall)
            wall = statistics.median(walls)
            rows.append({"ranks": np, "wall_seconds": wall, "mp_per_second": mp / wall})
    base = rows[0]["wall_seconds"]
    for r in rows:
        r["speedup"] = base / r["wall_seconds"]
        workers = max(r["ranks"] - 1, 1)
        r["efficiency"] = r["speedup"] / workers
    with open(args.out + ".csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["ranks", "wall_seconds", "mp_per_second", "speedup", "efficiency"])
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    svg(rows, args.out + ".svg")
    for r in rows:
        print(f"-np {r['ranks']}: {r['wall_seconds']:.2f} s, {r['mp_per_second']:.1f} MP/s, speed-up {r['speedup']:.2f}, efficiency {r['efficiency']:.2f}")
    print(f"wrote {args.out}.csv and {args.out}.svg")


if __name__ == "__main__":
    main()
