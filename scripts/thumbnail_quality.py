#!/usr/bin/env python3
"""Shrink-on-load quality: imgproc's thumbnails against OpenCV's full-size pipeline.

For each corpus JPEG and each target width, the reference is the full-resolution
`cv2.resize(cv2.imread(f), (w, h), interpolation=INTER_AREA)` (not encoded). OpenCV's
pipeline writes that reference as JPEG; imgproc runs `resize:width=W,filter=area` with
the same quality (shrink-on-load on, then off). The table gives the PSNR of each
output against the reference, and the loss of imgproc's shrink-on-load relative to
OpenCV's pipeline (the issue asks for at most 1 dB).

    scripts/.venv/bin/python scripts/thumbnail_quality.py target/release/imgproc [--widths 256,512,1024] [--quality 85]
"""
import argparse
import glob
import os
import subprocess
import tempfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "..", "shared", "corpus", "photos")


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--widths", default="256,512,1024")
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()
    photos = sorted(glob.glob(os.path.join(PHOTOS, "*.jpg")))
    widths = [int(w) for w in args.widths.split(",")]
    print("| width | photo | OpenCV pipeline dB | imgproc shrink-on-load dB | imgproc --no-shrink-on-load dB | loss dB |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for width in widths:
            outs = {}
            for mode, extra in (("shrink", []), ("exact", ["--no-shrink-on-load"])):
                out = os.path.join(tmp, f"{mode}{width}")
                cmd = [args.binary, "-q", "--backend", "cpu", "--op", f"resize:width={width},filter=area",
                       "--format", "jpeg", "--quality", str(args.quality), "-o", out] + extra + photos
                subprocess.run(cmd, check=True)
                outs[mode] = out
            for p in photos:
                img = cv2.imread(p)
                h, w = img.shape[:2]
                ref = cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
                ok, buf = cv2.imencode(".jpg", ref, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
                opencv = psnr(cv2.imdecode(buf, cv2.IMREAD_COLOR), ref)
                name = os.path.splitext(os.path.basename(p))[0] + ".jpg"
                shrink = psnr(cv2.imread(os.path.join(outs["shrink"], name)), ref)
                exact = psnr(cv2.imread(os.path.join(outs["exact"], name)), ref)
                loss = opencv - shrink
                worst = max(worst, loss)
                print(f"| {width} | {os.path.basename(p)} | {opencv:.2f} | {shrink:.2f} | {exact:.2f} | {loss:+.2f} |")
    print(f"\nlargest loss of shrink-on-load against OpenCV's pipeline: {worst:.2f} dB")


if __name__ == "__main__":
    main()
