#!/usr/bin/env python3
"""Produce the golden outputs in tests/golden/ with OpenCV (and Pillow for lanczos3).

Each case applies one imgproc op string to one fixture; the reference is computed here
by the library imgproc's semantics follow, never by imgproc itself. The Rust test
(tests/integration/golden.rs) applies the same op string and compares with the
tolerance it states per op. Regenerate only on purpose:

    scripts/setup_venv.sh && scripts/.venv/bin/python scripts/make_references.py
"""
import json
import os

import cv2
import numpy as np
from PIL import Image

cv2.setNumThreads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
GOLD = os.path.join(ROOT, "tests", "golden")


def read(name):
    img = cv2.imread(os.path.join(FIX, name), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def write(path, img):
    # Pillow writes gray+alpha (2 channels), which cv2.imwrite cannot.
    if img.ndim == 2:
        Image.fromarray(img, "L").save(path)
    else:
        Image.fromarray(img, {2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[2]]).save(path)


def colour(img, f):
    """Apply f to the colour channels; alpha (if any) passes through."""
    if img.ndim == 3 and img.shape[2] == 4:
        out = f(np.ascontiguousarray(img[..., :3]))
        if out.ndim == 2:
            out = out[..., None]
        return np.concatenate([out, img[..., 3:]], axis=2)
    return f(img)


def per_channel(img, f):
    if img.ndim == 2:
        return f(img)
    return cv2.merge([f(np.ascontiguousarray(c)) for c in cv2.split(img)])


def full(img, v):
    return np.full(img.shape, v, np.uint8)


def gray(img):
    return colour(img, lambda c: cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) if c.ndim == 3 else c)


def hsv(img, dh=0, ds=0, dv=0):
    def f(c):
        if c.ndim == 2:
            c = cv2.cvtColor(c, cv2.COLOR_GRAY2RGB)
        h, s, v = cv2.split(cv2.cvtColor(c, cv2.COLOR_RGB2HSV))
        h = ((h.astype(np.int32) + dh) % 180).astype(np.uint8)
        s = np.clip(s.astype(np.int32) + ds, 0, 255).astype(np.uint8)
        v = np.clip(v.astype(np.int32) + dv, 0, 255).astype(np.uint8)
        return cv2.cvtColor(cv2.merge([h, s, v]), cv2.COLOR_HSV2RGB)

    return colour(img, f)


def sobel(img, dx, dy):
    def f(c):
        out = None
        for ox, oy in ((1, 0), (0, 1)):
            if (ox and dx) or (oy and dy):
                d = cv2.convertScaleAbs(cv2.Sobel(c, cv2.CV_16S, ox, oy, ksize=3))
                out = d if out is None else cv2.add(out, d)
        return out

    return colour(img, f)


def lut(img, table):
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    return colour(img, lambda c: cv2.LUT(c, table))


def sharpen(img, sigma, amount):
    return colour(img, lambda c: cv2.addWeighted(c, 1 + amount, cv2.GaussianBlur(c, (0, 0), sigma), -amount, 0))


def resize(img, w, h, interp):
    return cv2.resize(img, (w, h), interpolation=interp)


def lanczos(img, w, h):
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def size(img, scale):
    # imgproc rounds halves up (Python's round() would round them to even).
    def r(v):
        return max(1, int(np.floor(v + 0.5)))

    return r(img.shape[1] * scale), r(img.shape[0] * scale)


def canny(img, low, high):
    # On the BGR image cv2.imread gives, as OpenCV users call it: on a tie between
    # channels OpenCV keeps the first, so the order matters (imgproc follows BGR's).
    if img.ndim == 2:
        return cv2.Canny(img, low, high)
    return cv2.Canny(cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR), low, high)


def pad(img, top, bottom, left, right, v):
    # imgproc's border: v on colour channels, opaque alpha.
    cn = 1 if img.ndim == 2 else img.shape[2]
    fill = {1: v, 2: (v, 255), 3: (v, v, v), 4: (v, v, v, 255)}[cn]
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=fill)


I = np.arange(256, dtype=np.float64)
N, L, C, A = cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA

# (op string as imgproc takes it, reference)
CASES = [
    ("grayscale", gray),
    ("invert", lambda i: colour(i, cv2.bitwise_not)),
    ("blur", lambda i: cv2.GaussianBlur(i, (5, 5), 0)),
    ("blur:ksize=3", lambda i: cv2.GaussianBlur(i, (3, 3), 0)),
    ("blur:ksize=0,sigma=2", lambda i: cv2.GaussianBlur(i, (0, 0), 2)),
    ("blur:ksize=7,sigma=1.5", lambda i: cv2.GaussianBlur(i, (7, 7), 1.5)),
    ("canny", lambda i: canny(i, 100, 200)),
    ("canny:low=30,high=90", lambda i: canny(i, 30, 90)),
    ("brighten", lambda i: colour(i, lambda c: cv2.add(c, full(c, 60)))),
    ("darken:amount=100", lambda i: colour(i, lambda c: cv2.subtract(c, full(c, 100)))),
    ("threshold", lambda i: colour(i, lambda c: cv2.threshold(c, 127, 255, cv2.THRESH_BINARY)[1])),
    ("threshold:value=200.5", lambda i: colour(i, lambda c: cv2.threshold(c, 200.5, 255, cv2.THRESH_BINARY)[1])),
    ("custom_processing", lambda i: hsv(i, dv=50)),
    ("hsv:hue=30,saturation=-40,value=-20", lambda i: hsv(i, 30, -40, -20)),
    ("hsv:hue=-100,saturation=80", lambda i: hsv(i, -100, 80, 0)),
    ("sharpen", lambda i: sharpen(i, 1.0, 1.0)),
    ("sharpen:sigma=2.5,amount=0.6", lambda i: sharpen(i, 2.5, 0.6)),
    ("median", lambda i: cv2.medianBlur(i, 5)),
    ("median:ksize=3", lambda i: cv2.medianBlur(i, 3)),
    ("box_blur", lambda i: cv2.blur(i, (5, 5))),
    ("box_blur:ksize=4", lambda i: cv2.blur(i, (4, 4))),
    ("box_blur:ksize=17", lambda i: cv2.blur(i, (17, 17))),
    ("sobel", lambda i: sobel(i, 1, 1)),
    ("sobel:direction=x", lambda i: sobel(i, 1, 0)),
    ("sobel:direction=y", lambda i: sobel(i, 0, 1)),
    ("resize:scale=0.37,filter=nearest", lambda i: resize(i, *size(i, 0.37), N)),
    ("resize:scale=1.7,filter=nearest", lambda i: resize(i, *size(i, 1.7), N)),
    ("resize:scale=0.37,filter=bilinear", lambda i: resize(i, *size(i, 0.37), L)),
    ("resize:scale=0.5,filter=bilinear", lambda i: resize(i, *size(i, 0.5), L)),
    ("resize:scale=1.7,filter=bilinear", lambda i: resize(i, *size(i, 1.7), L)),
    ("resize:scale=0.37,filter=bicubic", lambda i: resize(i, *size(i, 0.37), C)),
    ("resize:scale=1.7,filter=bicubic", lambda i: resize(i, *size(i, 1.7), C)),
    ("resize:scale=0.37,filter=area", lambda i: resize(i, *size(i, 0.37), A)),
    ("resize:scale=0.25,filter=area", lambda i: resize(i, *size(i, 0.25), A)),
    ("resize:scale=1.7,filter=area", lambda i: resize(i, *size(i, 1.7), A)),
    ("resize:scale=0.37,filter=lanczos3", lambda i: lanczos(i, *size(i, 0.37))),
    ("resize:scale=1.7,filter=lanczos3", lambda i: lanczos(i, *size(i, 1.7))),
    ("rotate", lambda i: cv2.rotate(i, cv2.ROTATE_90_CLOCKWISE)),
    ("rotate:angle=180", lambda i: cv2.rotate(i, cv2.ROTATE_180)),
    ("rotate:angle=270", lambda i: cv2.rotate(i, cv2.ROTATE_90_COUNTERCLOCKWISE)),
    ("flip", lambda i: cv2.flip(i, 1)),
    ("flip:axis=v", lambda i: cv2.flip(i, 0)),
    ("crop:x=1,y=2,width=4,height=3", lambda i: i[2:5, 1:5]),
    ("equalize", lambda i: colour(i, lambda c: per_channel(c, cv2.equalizeHist))),
    ("gamma", lambda i: lut(i, 255 * (I / 255) ** (1 / 2.2))),
    ("gamma:gamma=0.5", lambda i: lut(i, 255 * (I / 255) ** 2)),
    ("contrast", lambda i: lut(i, (I - 128) * 1.5 + 128)),
    ("erode", lambda i: cv2.erode(i, np.ones((3, 3), np.uint8))),
    ("erode:ksize=5,iterations=2", lambda i: cv2.erode(i, np.ones((5, 5), np.uint8), iterations=2)),
    ("dilate", lambda i: cv2.dilate(i, np.ones((3, 3), np.uint8))),
    ("dilate:ksize=4", lambda i: cv2.dilate(i, np.ones((4, 4), np.uint8))),
    # New cases go at the end, so that the existing references keep their names.
    ("pad:top=3,bottom=1,left=2,right=5,value=200", lambda i: pad(i, 3, 1, 2, 5, 200)),
    ("pad:left=1", lambda i: pad(i, 0, 0, 1, 0, 0)),
]

FIXTURES = ["photo_rgb.png", "graphic_rgba.png", "gray_odd.png", "tiny_rgb.png"]

# Non-default parameters on a crop of a real photo (tests/fixtures/photo_crop.png), where
# the synthetic fixtures missed an off-by-one rounding (box_blur) and channel ties (canny).
PHOTO = "photo_crop.png"
PHOTO_CASES = [
    ("box_blur", lambda i: cv2.blur(i, (5, 5))),
    ("box_blur:ksize=3", lambda i: cv2.blur(i, (3, 3))),
    ("box_blur:ksize=6", lambda i: cv2.blur(i, (6, 6))),
    ("box_blur:ksize=7", lambda i: cv2.blur(i, (7, 7))),
    ("box_blur:ksize=8", lambda i: cv2.blur(i, (8, 8))),
    ("box_blur:ksize=15", lambda i: cv2.blur(i, (15, 15))),
    ("box_blur:ksize=21", lambda i: cv2.blur(i, (21, 21))),
    ("canny", lambda i: canny(i, 100, 200)),
    ("canny:low=50,high=120", lambda i: canny(i, 50, 120)),
    ("canny:low=30,high=60", lambda i: canny(i, 30, 60)),
    ("blur:ksize=0,sigma=2", lambda i: cv2.GaussianBlur(i, (0, 0), 2)),
    ("median:ksize=7", lambda i: cv2.medianBlur(i, 7)),
    ("sobel:direction=x", lambda i: sobel(i, 1, 0)),
    ("resize:scale=0.37,filter=bilinear", lambda i: resize(i, *size(i, 0.37), L)),
    ("resize:scale=0.37,filter=area", lambda i: resize(i, *size(i, 0.37), A)),
]

# Pillow resizes RGBA premultiplied and has no 2-channel mode; imgproc, like OpenCV, does not premultiply.
SKIP = {("graphic_rgba.png", "lanczos3")}


def main():
    os.makedirs(GOLD, exist_ok=True)
    index = []
    for fixture, cases in [(f, CASES) for f in FIXTURES] + [(PHOTO, PHOTO_CASES)]:
        img = read(fixture)
        stem = fixture.rsplit(".", 1)[0]
        for k, (op, ref) in enumerate(cases):
            if any(fixture == f and key in op for f, key in SKIP):
                continue
            out = ref(img)
            name = f"{stem}__{k:02d}.png"
            write(os.path.join(GOLD, name), out)
            index.append({"fixture": fixture, "op": op, "golden": name})
    with open(os.path.join(GOLD, "cases.json"), "w") as f:
        json.dump({"generator": "scripts/make_references.py", "opencv": cv2.__version__, "cases": index}, f, indent=1)
        f.write("\n")
    print(f"{len(index)} references written to {GOLD} with OpenCV {cv2.__version__}")


if __name__ == "__main__":
    main()
