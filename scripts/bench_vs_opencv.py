#!/usr/bin/env python3
"""imgproc's ops against OpenCV's, one thread each, on the same pixels, side by side.

Crops a 12 MP (4000x3000) RGB image from the corpus photo Elephants_5640x3172.jpg,
runs `cargo bench --bench optable` (imgproc, one rayon thread) and the same ops with
OpenCV (cv2.setNumThreads(1)), and prints median MP/s of each with the ratio
imgproc/OpenCV. Both sides run in this one invocation, so the machine's state is shared.

    scripts/setup_venv.sh && scripts/.venv/bin/python scripts/bench_vs_opencv.py [--iters 7] [--out table.md]
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


def timeit(f, iters):
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def opencv_ops(img):
    """The OpenCV expression for each op string of benches/optable.rs (RGB input)."""
    h, w = img.shape[:2]
    small = (round(w * 0.37), round(h * 0.37))
    half = (w // 2, h // 2)
    lut_g = np.clip(np.rint(255 * (np.arange(256) / 255) ** (1 / 2.2)), 0, 255).astype(np.uint8)
    lut_c = np.clip(np.rint((np.arange(256) - 128) * 1.5 + 128), 0, 255).astype(np.uint8)
    k3 = np.ones((3, 3), np.uint8)
    work = img.copy()  # in-place target for the ops imgproc also runs in place

    def hsv():
        hh, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
        return cv2.cvtColor(cv2.merge([hh, s, cv2.add(v, 50)]), cv2.COLOR_HSV2RGB)

    def sobel():
        dx = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 1, 0))
        dy = cv2.convertScaleAbs(cv2.Sobel(img, cv2.CV_16S, 0, 1))
        return cv2.add(dx, dy)

    return {
        "grayscale": lambda: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY),
        "invert": lambda: cv2.bitwise_not(work, dst=work),
        "blur": lambda: cv2.GaussianBlur(img, (5, 5), 0),
        "canny": lambda: cv2.Canny(img, 100, 200),
        "brighten": lambda: cv2.add(work, (60, 60, 60, 0), dst=work),
        "darken": lambda: cv2.subtract(work, (60, 60, 60, 0), dst=work),
        "threshold": lambda: cv2.threshold(work, 127, 255, cv2.THRESH_BINARY, dst=work),
        "custom_processing": hsv,
        "sharpen": lambda: cv2.addWeighted(img, 2.0, cv2.GaussianBlur(img, (0, 0), 1.0), -1.0, 0),
        "median": lambda: cv2.medianBlur(img, 5),
        "box_blur": lambda: cv2.blur(img, (5, 5)),
        "sobel": sobel,
        "resize:scale=0.5,filter=bilinear": lambda: cv2.resize(img, half, interpolation=cv2.INTER_LINEAR),
        "resize:scale=0.37,filter=bilinear": lambda: cv2.resize(img, small, interpolation=cv2.INTER_LINEAR),
        "resize:scale=0.37,filter=bicubic": lambda: cv2.resize(img, small, interpolation=cv2.INTER_CUBIC),
        "resize:scale=0.37,filter=area": lambda: cv2.resize(img, small, interpolation=cv2.INTER_AREA),
        "resize:scale=0.37,filter=lanczos3": lambda: Image.fromarray(img).resize(small, Image.LANCZOS),
        "rotate": lambda: cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
        "flip": lambda: cv2.flip(img, 1),
        "equalize": lambda: cv2.merge([cv2.equalizeHist(c) for c in cv2.split(img)]),
        "gamma": lambda: cv2.LUT(work, lut_g, dst=work),
        "contrast": lambda: cv2.LUT(work, lut_c, dst=work),
        "erode": lambda: cv2.erode(img, k3),
        "dilate": lambda: cv2.dilate(img, k3),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    src = cv2.imread(os.path.join(CORPUS, "photos", "Elephants_5640x3172.jpg"))
    img = np.ascontiguousarray(cv2.cvtColor(src[:3000, :4000], cv2.COLOR_BGR2RGB))
    mp = img.shape[0] * img.shape[1] / 1e6
    tmp = tempfile.mkdtemp()
    png, jpg = os.path.join(tmp, "bench.png"), os.path.join(tmp, "bench.jpg")
    cv2.imwrite(png, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    cv2.imwrite(jpg, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])

    cmd = ["cargo", "bench", "-q", "--bench", "optable", "--", "--image", png, "--jpeg", jpg, "--iters", str(args.iters)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            ours[rec["name"]] = rec["mp_s"]

    ref = {name: mp / timeit(f, args.iters) for name, f in opencv_ops(img).items()}
    jb = open(jpg, "rb").read()
    jarr = np.frombuffer(jb, np.uint8)
    ref["jpeg decode"] = mp / timeit(lambda: cv2.imdecode(jarr, cv2.IMREAD_COLOR), args.iters)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ref["jpeg encode q90 4:2:0"] = mp / timeit(lambda: cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]), args.iters)
    ref["png encode"] = mp / timeit(lambda: cv2.imencode(".png", bgr), args.iters)
    pb = np.frombuffer(cv2.imencode(".png", bgr)[1].tobytes(), np.uint8)
    ref["png decode"] = mp / timeit(lambda: cv2.imdecode(pb, cv2.IMREAD_COLOR), args.iters)

    lines = [
        f"12 MP RGB (4000x3000 crop of Elephants_5640x3172.jpg), one thread each, median of {args.iters}; "
        f"OpenCV {cv2.__version__}",
        "",
        "| op | imgproc MP/s | OpenCV MP/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name in ours:
        r = ref.get(name)
        ratio = f"{ours[name] / r:.2f}" if r else "-"
        lines.append(f"| {name} | {ours[name]:.0f} | {r:.0f} | {ratio} |" if r else f"| {name} | {ours[name]:.0f} | - | - |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
