#!/usr/bin/env python3
"""Cut the small test fixtures in tests/fixtures/ out of ../shared/corpus.

Run once when fixtures change (scripts/make_references.py then regenerates the golden
outputs). Fixtures are committed; the corpus is not.
"""
import os
import sys

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
OUT = os.path.join(ROOT, "tests", "fixtures")


def load(rel):
    img = cv2.imread(os.path.join(CORPUS, rel), cv2.IMREAD_UNCHANGED)
    if img is None:
        sys.exit(f"cannot read {rel} from {CORPUS}")
    return img


def main():
    os.makedirs(OUT, exist_ok=True)
    # A textured photo crop (RGB): edges, gradients and flat areas.
    lady = load("photos/LadyBird.jpg")
    cv2.imwrite(os.path.join(OUT, "photo_rgb.png"), lady[700:850, 1100:1300])
    # RGBA with varying transparency.
    arc = load("graphics/Arc-Colors-Transparent-Wallpaper.png")
    cv2.imwrite(os.path.join(OUT, "graphic_rgba.png"), arc[500:596, 900:1028])
    # Gray with odd dimensions.
    storm = load("photos/Storm.jpg")
    cv2.imwrite(os.path.join(OUT, "gray_odd.png"), cv2.cvtColor(storm[400:477, 600:699], cv2.COLOR_BGR2GRAY))
    # A crop of a real photo where rounding and tie-breaking details show (box filters
    # off by one level, Canny's channel ties); only the photo cases run on it.
    elephants = load("photos/Elephants_3840x2160.jpg")
    cv2.imwrite(os.path.join(OUT, "photo_crop.png"), elephants[0:192, 0:256])
    # A tiny image, smaller than most kernels, to exercise the borders.
    cv2.imwrite(os.path.join(OUT, "tiny_rgb.png"), lady[800:805, 1200:1207])
    print("fixtures written to", OUT)


if __name__ == "__main__":
    main()
