#!/usr/bin/env python3
"""imgproc's ops against OpenCV's, on the same pixels and thread count, side by side.

Crops a 12 MP (4000x3000) RGB image from the corpus photo Elephants_5640x3172.jpg
(made gray, gray+alpha or RGBA for other channel counts), starts `cargo bench --bench
optable -- --serve` (imgproc, N rayon threads) and times each op there, then the same
op with OpenCV (cv2.setNumThreads(N)), then the next op, for --rounds rounds. It prints
the median MP/s of each side with the ratio imgproc/OpenCV. The sides alternate op by
op because this shared machine's speed drifts by tens of percent within minutes: run
as two blocks, one side's figures could come from a slow minute and the other's from
a fast one.

    scripts/setup_venv.sh && scripts/.venv/bin/python scripts/bench_vs_opencv.py [--iters 7] [--rounds 3]
        [--out table.md] [--threads 1,2] [--channels 1,2,3,4] [--only median]

With several thread counts it adds imgproc's scaling (last / first); with several
channel counts each op gets a row per count (the image as gray, gray+alpha, RGB, RGBA).
The first row, `copy`, is the memory bound: the whole image copied into a new buffer
(imgproc: a crop of all of it; here: numpy's copy).

With --depth 16 the image is widened to 16 bits (v * 256 plus a varying low byte) and
the reference is not OpenCV but imgproc itself going through 8 bits: the 16-bit image
converted to 8 bits (v / 257, rounded), the op run there and the result converted back
(v * 257), both conversions in parallel (optable's `via8:` ops). Ops that keep 16 bits
should beat it, and ops that reduce to 8 bits anyway should not lose to it.

Each side runs an op untimed for --warmup-ms (150) before timing it. The development
VM's kernel packs a process's threads onto one vCPU after an idle spell (its
/proc/sys/kernel/sched_vcpu_pack; README, Speed), so without a warm-up a two-thread
figure taken right after the other side's turn often measured one core.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")


def timeit(f, iters, warm_ms=0):
    """Median seconds of `iters` runs of `f`, after untimed runs for `warm_ms` ms."""
    start = time.perf_counter()
    while (time.perf_counter() - start) * 1000 < warm_ms:
        f()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def opencv_ops(img):
    """The OpenCV expression for each op string of benches/optable.rs, on `img` (RGB,
    RGBA, gray or gray+alpha, as imgproc holds it); None where OpenCV has no such op for
    that channel count."""
    h, w = img.shape[:2]
    cn = 1 if img.ndim == 2 else img.shape[2]
    small = (round(w * 0.37), round(h * 0.37))
    half = (w // 2, h // 2)
    big = (round(w * 1.5), round(h * 1.5))
    lut_g = np.clip(np.rint(255 * (np.arange(256) / 255) ** (1 / 2.2)), 0, 255).astype(np.uint8)
    lut_c = np.clip(np.rint((np.arange(256) - 128) * 1.5 + 128), 0, 255).astype(np.uint8)
    k3 = np.ones((3, 3), np.uint8)
    work = img.copy()  # in-place target for the ops imgproc also runs in place
    # imgproc leaves alpha alone: the scalar's alpha part is 0.
    amount = {1: 60, 2: (60, 0, 0, 0), 3: (60, 60, 60, 0), 4: (60, 60, 60, 0)}[cn]
    pillow_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[cn]

    def hsv():
        hh, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
        return cv2.cvtColor(cv2.merge([hh, s, cv2.add(v, 50)]), cv2.COLOR_HSV2RGB)

    def sobel():
        dx = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 1, 0))
        dy = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 0, 1))
        return cv2.add(dx, dy)

    def per_channel(f):
        return lambda: f(img) if cn == 1 else cv2.merge([f(c) for c in cv2.split(img)])

    return {
        "grayscale": {3: lambda: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY),
                      4: lambda: cv2.cvtColor(img, cv2.COLOR_RGBA2GRAY)}.get(cn),
        "invert": lambda: cv2.bitwise_not(work, dst=work),
        "blur": lambda: cv2.GaussianBlur(img, (5, 5), 0),
        "canny": lambda: cv2.Canny(img, 100, 200),
        "brighten": lambda: cv2.add(work, amount, dst=work),
        "darken": lambda: cv2.subtract(work, amount, dst=work),
        "threshold": lambda: cv2.threshold(work, 127, 255, cv2.THRESH_BINARY, dst=work),
        "custom_processing": hsv if cn == 3 else None,
        "sharpen": lambda: cv2.addWeighted(img, 2.0, cv2.GaussianBlur(img, (0, 0), 1.0), -1.0, 0),
        "median": lambda: cv2.medianBlur(img, 5),
        "box_blur": lambda: cv2.blur(img, (5, 5)),
        "sobel": sobel,
        "resize:scale=0.5,filter=bilinear": lambda: cv2.resize(img, half, interpolation=cv2.INTER_LINEAR),
        "resize:scale=0.37,filter=bilinear": lambda: cv2.resize(img, small, interpolation=cv2.INTER_LINEAR),
        "resize:scale=1.5,filter=bilinear": lambda: cv2.resize(img, big, interpolation=cv2.INTER_LINEAR),
        "resize:scale=0.37,filter=bicubic": lambda: cv2.resize(img, small, interpolation=cv2.INTER_CUBIC),
        "resize:scale=0.37,filter=area": lambda: cv2.resize(img, small, interpolation=cv2.INTER_AREA),
        # OpenCV has no Lanczos with antialiasing; Pillow's is the reference.
        "resize:scale=0.37,filter=lanczos3": lambda: Image.fromarray(img, pillow_mode).resize(small, Image.LANCZOS),
        "rotate": lambda: cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
        "flip": lambda: cv2.flip(img, 1),
        "equalize": per_channel(cv2.equalizeHist),
        "gamma": lambda: cv2.LUT(work, lut_g, dst=work),
        "contrast": lambda: cv2.LUT(work, lut_c, dst=work),
        "erode": lambda: cv2.erode(img, k3),
        "dilate": lambda: cv2.dilate(img, k3),
        "crop:x=100,y=100,width=3000,height=2000": lambda: img[100:2100, 100:3100].copy(),
        # The yardstick: the whole image into a new array (numpy's one memcpy).
        "copy": lambda: img.copy(),
        "pad:top=16,bottom=16,left=16,right=16": lambda: cv2.copyMakeBorder(img, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=(0, 0, 0, 255)),
    }


def with_channels(rgb, cn):
    """The test image as imgproc holds it with `cn` channels (alpha: a gradient)."""
    if cn == 3:
        return rgb
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    return np.ascontiguousarray({1: gray, 2: np.dstack([gray, alpha]), 4: np.dstack([rgb, alpha])}[cn])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=7, help="timed runs of an op per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over all ops, alternating imgproc and OpenCV op by op")
    ap.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    ap.add_argument("--warmup-ms", type=int, default=150,
                    help="untimed runs of an op for this long before each side times it")
    ap.add_argument("--channels", default="3", help="comma-separated channel counts, e.g. 1,2,3,4")
    ap.add_argument("--only", help="only the ops whose string starts with this")
    ap.add_argument("--depth", type=int, choices=[8, 16], default=8,
                    help="16: a 16-bit image, against imgproc through 8 bits and back")
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    channels = [int(c) for c in args.channels.split(",")]
    src = cv2.imread(os.path.join(CORPUS, "photos", "Elephants_5640x3172.jpg"))
    rgb = np.ascontiguousarray(cv2.cvtColor(src[:3000, :4000], cv2.COLOR_BGR2RGB))
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    tmp = tempfile.mkdtemp()
    jpg = os.path.join(tmp, "bench.jpg")
    cv2.imwrite(jpg, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    wide = args.depth == 16
    codecs = channels == [3] and not args.only and not wide
    subprocess.run(["cargo", "bench", "-q", "--bench", "optable", "--no-run"], cwd=ROOT, check=True, capture_output=True)

    optable = ["cargo", "bench", "-q", "--bench", "optable", "--"]
    names = subprocess.run(optable + ["--names"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    if args.only:
        names = [n for n in names if n.startswith(args.only)]
    ours, ref, ratios = {}, {}, {}  # (name, channels, threads) -> MP/s, or imgproc/OpenCV
    scaling = {}  # (name, channels) -> imgproc's many-thread MP/s over its one-thread MP/s
    for cn in channels:
        img = with_channels(rgb, cn)
        png = os.path.join(tmp, f"bench{cn}.png")
        Image.fromarray(img, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[cn]).save(png, compress_level=1)
        cv_ops = opencv_ops(img)
        # imgproc serves one op at a time, one server per thread count; each op runs on
        # imgproc, then on OpenCV, at each thread count in turn, then the next op, round
        # after round, and each figure is the median of its rounds: a drift in the
        # machine's speed hits both sides and both thread counts alike.
        depth = ["--depth", "16"] if wide else []
        servers = {t: subprocess.Popen(optable + ["--image", png, "--threads", str(t), "--serve"] + depth,
                                       cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)
                   for t in threads}
        runs = {}  # (name, side, threads) -> MP/s per round
        for _ in range(args.rounds):
            for name in names:
                for t in threads:
                    server = servers[t]

                    def serve(op):
                        server.stdin.write(f"{op} {args.iters} {args.warmup_ms}\n")
                        server.stdin.flush()
                        return json.loads(server.stdout.readline())["mp_s"]

                    runs.setdefault((name, "ours", t), []).append(serve(name))
                    if wide:
                        runs.setdefault((name, "ref", t), []).append(serve("via8:" + name))
                        continue
                    f = cv_ops.get(name)
                    if f is None:
                        continue
                    cv2.setNumThreads(t)
                    try:
                        f()
                    except cv2.error:
                        runs.setdefault((name, "ref", t), []).append(None)
                        continue
                    runs.setdefault((name, "ref", t), []).append(mp / timeit(f, args.iters, args.warmup_ms))
        for server in servers.values():
            server.stdin.close()
            server.wait()
        mid = lambda v: None if not v or None in v else sorted(v)[len(v) // 2]
        for name in names:
            for t in threads:
                a, b = runs.get((name, "ours", t)), runs.get((name, "ref", t))
                ours[(name, cn, t)] = mid(a)
                ref[(name, cn, t)] = mid(b)
                # The ratio is the median of each round's ratio: the two runs of a round
                # are seconds apart, so they share the machine's speed best.
                if a and b and None not in a and None not in b and all(b):
                    ratios[(name, cn, t)] = mid([x / y for x, y in zip(a, b)])
            # Scaling likewise: each round's many-thread figure over its one-thread one.
            a, b = runs.get((name, "ours", threads[0])), runs.get((name, "ours", threads[-1]))
            if len(threads) > 1 and a and b and None not in a and None not in b:
                scaling[(name, cn)] = mid([y / x for x, y in zip(a, b)])
        if codecs:
            t = threads[0]
            out = subprocess.run(optable + ["--image", png, "--jpeg", jpg, "--iters", str(args.iters),
                                            "--codecs-only"],
                                 cwd=ROOT, check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                if line.startswith("{"):
                    rec = json.loads(line)
                    names += [rec["name"]] if rec["name"] not in names else []
                    ours[(rec["name"], cn, t)] = rec["mp_s"]
            jb = np.frombuffer(open(jpg, "rb").read(), np.uint8)
            ref[("jpeg decode", cn, t)] = mp / timeit(lambda: cv2.imdecode(jb, cv2.IMREAD_COLOR), args.iters)
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            ref[("jpeg encode q90 4:2:0", cn, t)] = mp / timeit(lambda: cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]), args.iters)
            ref[("png encode", cn, t)] = mp / timeit(lambda: cv2.imencode(".png", bgr), args.iters)
            pb = np.frombuffer(cv2.imencode(".png", bgr)[1].tobytes(), np.uint8)
            ref[("png decode", cn, t)] = mp / timeit(lambda: cv2.imdecode(pb, cv2.IMREAD_COLOR), args.iters)

    fmt = lambda v: "-" if v is None else f"{v:.0f}"
    ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}"
    head = ["op", "ch"]
    for t in threads:
        head += [f"imgproc {t}t", f"{'via 8-bit' if wide else 'OpenCV'} {t}t", f"ratio {t}t"]
    if len(threads) > 1:
        head += [f"imgproc {threads[-1]}t/{threads[0]}t"]
    if wide:
        caption = (f"16-bit 12 MP (4000x3000 crop of Elephants_5640x3172.jpg, v * 256 plus a varying low "
                   f"byte) at 1-4 channels, MP/s: median over {args.rounds} rounds of the median of "
                   f"{args.iters} runs; via 8-bit = imgproc converting to 8 bits, running the op and "
                   f"converting back, alternating with the 16-bit op; ratio = 16-bit / via 8-bit; ops "
                   f"marked 8-bit in the README reduce to 8 bits and do not convert back")
    else:
        caption = (f"12 MP (4000x3000 crop of Elephants_5640x3172.jpg) at 1-4 channels, MP/s: median over "
                   f"{args.rounds} rounds of the median of {args.iters} runs, imgproc and OpenCV alternating "
                   f"op by op and thread count by thread count; ratios and scaling: medians of the rounds' "
                   f"ratios; OpenCV {cv2.__version__} (lanczos3: Pillow); ratio = imgproc / OpenCV; - = no such op")
    lines = [
        caption,
        "",
        "| " + " | ".join(head) + " |",
        "|---|---:|" + "---:|" * (len(head) - 2),
    ]
    for name in names:
        for cn in channels:
            row = [name, str(cn)]
            if all(ours.get((name, cn, t)) is None for t in threads):
                continue
            for t in threads:
                a, b = ours.get((name, cn, t)), ref.get((name, cn, t))
                r = ratios.get((name, cn, t))
                row += [fmt(a), fmt(b), f"{r:.2f}" if r is not None else ratio(a, b)]
            if len(threads) > 1:
                sc = scaling.get((name, cn))
                row += [f"{sc:.2f}" if sc is not None else
                        ratio(ours.get((name, cn, threads[-1])), ours.get((name, cn, threads[0])))]
            lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
