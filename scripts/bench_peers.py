#!/usr/bin/env python3
"""imgproc end to end against its peers, side by side: time and peak memory.

Workloads (inputs are the corpus or made from it once, into --work):
  small      1,000 photos of 640x480 (crops of the corpus photos, JPEG q90), blur -> JPEG q90
  huge-prog  Elephants_5640x3172.jpg (17.9 MP, progressive), blur -> JPEG q90
  big-base   a 14.7 MP baseline JPEG (that photo resized to 4700x3128 by OpenCV, q90), blur -> JPEG q90
  thumbs     the 15 corpus photos (65.8 MP) -> 512 px wide thumbnails, JPEG q85
  medium     the 15 corpus photos, blur -> JPEG q90

Tools, each run as a user would run it, with 2 threads:
  imgproc    the binary given (quick mode, -j 2), or several binaries to compare
  opencv     a Python script: cv2.imread, the op, cv2.imwrite, over a thread pool of 2
  vips       libvips' command line tools (`vips gaussblur`, `vipsthumbnail`) under GNU parallel -j 2

Every measurement is the wall time of the whole command (interpreter start-up
included, as a user sees it) and the peak resident memory of its process tree (the
largest ru_maxrss among the processes, from wait4, in MiB). Tools alternate within each
round; the table gives medians over --rounds and each tool's time relative to
imgproc (the first binary): "x" > 1 means imgproc is that much faster.

    scripts/setup_venv.sh
    scripts/.venv/bin/python scripts/bench_peers.py target/release/imgproc [OTHER_BIN ...] \
        [--rounds 5] [--workloads small,huge-prog,big-base,thumbs,medium] [--no-vips]
"""
import argparse
import concurrent.futures
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "..", "shared", "corpus", "photos")
BIG = os.path.join(PHOTOS, "Elephants_5640x3172.jpg")

# What each workload does: (imgproc --op, opencv op, quality).
WORK = {
    "small": ("blur", "blur", 90),
    "huge-prog": ("blur", "blur", 90),
    "big-base": ("blur", "blur", 90),
    "thumbs": ("resize:width=512,filter=area", "thumb512", 85),
    "medium": ("blur", "blur", 90),
}


def opencv_main(argv):
    """The OpenCV peer: `bench_peers.py opencv OP QUALITY OUT_DIR FILES...`."""
    import cv2

    op, quality, out_dir, files = argv[0], int(argv[1]), argv[2], argv[3:]

    def one(f):
        img = cv2.imread(f)
        if op == "blur":
            img = cv2.GaussianBlur(img, (5, 5), 0)
        else:
            h, w = img.shape[:2]
            img = cv2.resize(img, (512, round(h * 512 / w)), interpolation=cv2.INTER_AREA)
        name = os.path.splitext(os.path.basename(f))[0] + ".jpg"
        cv2.imwrite(os.path.join(out_dir, name), img, [cv2.IMWRITE_JPEG_QUALITY, quality])

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, files))


def make_inputs(work):
    """The inputs of each workload, made once into `work`."""
    import cv2

    photos = sorted(glob.glob(os.path.join(PHOTOS, "*.jpg")))
    small = os.path.join(work, "small")
    if len(glob.glob(os.path.join(small, "*.jpg"))) != 1000:
        os.makedirs(small, exist_ok=True)
        rng = random.Random(12)
        sources = [cv2.imread(p) for p in photos if "Elephants_" not in p]
        for i in range(1000):
            src = sources[i % len(sources)]
            h, w = src.shape[:2]
            # A 4:3 region of a random size, scaled to 640x480 as a camera would.
            cw = rng.randint(640, min(w, h * 4 // 3))
            ch = cw * 3 // 4
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            crop = cv2.resize(src[y : y + ch, x : x + cw], (640, 480), interpolation=cv2.INTER_AREA)
            cv2.imwrite(os.path.join(small, f"p{i:04}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    base = os.path.join(work, "big-base", "Elephants_4700x3128.jpg")
    if not os.path.exists(base):
        os.makedirs(os.path.dirname(base), exist_ok=True)
        img = cv2.resize(cv2.imread(BIG), (4700, 3128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(base, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return {
        "small": sorted(glob.glob(os.path.join(small, "*.jpg"))),
        "huge-prog": [BIG],
        "big-base": [base],
        "thumbs": photos,
        "medium": photos,
    }


def run(cmd, out_dir):
    """Wall seconds and peak RSS (MB) of `cmd`, its output folder emptied first."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])}... exited {p.returncode}:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def commands(tool, workload, files, out_dir, script):
    imgop, cvop, q = WORK[workload]
    if tool.startswith("imgproc"):
        binary = tool.split("=", 1)[1]
        ops = sum((["--op", o] for o in imgop.split(" ")), [])
        return [binary, "-q", "-j", "2", "--format", "jpeg", "--quality", str(q), "-o", out_dir] + ops + files
    if tool == "opencv":
        return [sys.executable, script, "opencv", cvop, str(q), out_dir] + files
    if tool == "vips":
        listing = os.path.join(os.path.dirname(out_dir), "vips-inputs.txt")
        os.makedirs(os.path.dirname(listing), exist_ok=True)
        with open(listing, "w") as f:
            f.write("\n".join(files) + "\n")
        if cvop == "blur":
            # sigma 1.1 is what OpenCV derives for a 5x5 kernel.
            job = f"vips gaussblur {{}} {out_dir}/{{/.}}.jpg[Q={q}] 1.1"
        else:
            job = f"vipsthumbnail {{}} --size 512x -o {out_dir}/%s.jpg[Q={q}]"
        return ["parallel", "-j", "2", "--arg-file", listing, job]
    raise ValueError(tool)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "opencv":
        return opencv_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="imgproc binaries; the first is the one compared")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", default="small,huge-prog,big-base,thumbs,medium")
    ap.add_argument("--no-vips", action="store_true", help="leave libvips out (it is slow on small files)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imgproc-bench-peers"))
    args = ap.parse_args()
    inputs = make_inputs(args.work)
    script = os.path.abspath(__file__)
    tools = [f"imgproc={os.path.abspath(b)}" for b in args.binaries] + ["opencv"]
    if not args.no_vips:
        tools.append("vips")
    rows = []
    for w in args.workloads.split(","):
        files = inputs[w]
        times = {t: [] for t in tools}
        rss = {t: [] for t in tools}
        for r in range(args.rounds):
            # Rotate the order each round so no tool always runs on a warm or cold cache.
            order = tools[r % len(tools):] + tools[: r % len(tools)]
            for t in order:
                out = os.path.join(args.work, "out", t.replace("/", "_"))
                wall, mb = run(commands(t, w, files, out, script), out)
                times[t].append(wall)
                rss[t].append(mb)
        base = statistics.median(times[tools[0]])
        for t in tools:
            med = statistics.median(times[t])
            name = "imgproc " + os.path.relpath(t.split("=", 1)[1], ROOT) if "=" in t else t
            rows.append((w, name, med, max(rss[t]), med / base))
    print(f"| workload | tool | median s | peak MiB | time / imgproc |")
    print("|---|---|---|---|---|")
    for w, name, med, mb, rel in rows:
        print(f"| {w} | {name} | {med:.3f} | {mb:.0f} | {rel:.2f}x |")


if __name__ == "__main__":
    main()
