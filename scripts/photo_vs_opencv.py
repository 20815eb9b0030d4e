#!/usr/bin/env python3
"""How far imgproc is from OpenCV on crops of real photos, for one or more binaries side
by side: the share of samples (pixels for canny) that differ from cv2 on the BGR image
cv2.imread gives, as a user would compute it.

    scripts/.venv/bin/python scripts/photo_vs_opencv.py BIN [BIN...]

Crops: cv2.imread(photo)[:1200, :1600] of Garden, Aqua and Elephants_3840x2160, saved as
PNG (no decoder difference). Cases: box_blur 5, 6, 7 and canny 50/120, 100/200."""
import os, subprocess, sys, tempfile

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "..", "..", "shared", "corpus", "photos")
CASES = [
    ("box_blur", lambda i: cv2.blur(i, (5, 5))),
    ("box_blur:ksize=6", lambda i: cv2.blur(i, (6, 6))),
    ("box_blur:ksize=7", lambda i: cv2.blur(i, (7, 7))),
    ("canny:low=50,high=120", lambda i: cv2.Canny(i, 50, 120)),
    ("canny", lambda i: cv2.Canny(i, 100, 200)),
]


def main():
    bins = sys.argv[1:]
    if not bins:
        sys.exit(__doc__)
    d = tempfile.mkdtemp()
    print("| photo crop | op | " + " | ".join(bins) + " |")
    print("|---|---|" + "---|" * len(bins))
    for name in ["Garden", "Aqua", "Elephants_3840x2160"]:
        img = cv2.imread(os.path.join(PHOTOS, name + ".jpg"))[:1200, :1600]
        src = os.path.join(d, name + ".png")
        cv2.imwrite(src, img)
        for op, ref in CASES:
            want = ref(img)
            cells = []
            for k, b in enumerate(bins):
                out = os.path.join(d, f"out{k}")
                subprocess.run([b, "-q", "--backend", "cpu", "--op", op, "--format", "png", "-o", out, src], check=True)
                ours = cv2.imread(os.path.join(out, name + ".png"), cv2.IMREAD_UNCHANGED)
                cells.append(f"{100 * np.mean(ours != want):.3f}%")
            print(f"| {name} | {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
