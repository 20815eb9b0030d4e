#!/usr/bin/env python3
"""JPEG fixtures and what OpenCV decodes from them, for tests/integration/jpeg.rs.

Writes small JPEGs into tests/fixtures/jpeg/ (a 97x61 crop of a corpus photo, so no
dimension is a multiple of a block): baseline 4:4:4, 4:2:2, 4:2:0 and 4:1:1,
progressive 4:2:0 and 4:4:4, gray, restart markers, and EXIF orientations 2 to 8.
Then, for those and every corpus JPEG, records what `cv2.bitwise_not(cv2.imread(f))`
gives (its shape and the CRC-32 of its samples in RGB order, as the PNG imgproc writes
holds them) in tests/fixtures/jpeg/opencv.json. The test runs
`imgproc --op invert --format png` on each file and compares. Regenerate on purpose:

    scripts/setup_venv.sh && scripts/.venv/bin/python scripts/make_jpeg_references.py
"""
import glob
import json
import os
import struct
import zlib

import cv2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "jpeg")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")


def with_orientation(jpeg, n):
    """`jpeg` with an APP1 Exif segment (big-endian TIFF, one IFD entry 0x0112 = n)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, n, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def make_fixtures():
    os.makedirs(OUT, exist_ok=True)
    src = cv2.imread(os.path.join(CORPUS, "photos", "Garden.jpg"))[700:761, 1200:1297]
    q = [cv2.IMWRITE_JPEG_QUALITY, 90]
    s = cv2.IMWRITE_JPEG_SAMPLING_FACTOR
    files = {
        "base444.jpg": (src, q + [s, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
        "base422.jpg": (src, q + [s, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]),
        "base420.jpg": (src, q + [s, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]),
        "base411.jpg": (src, q + [s, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411]),
        "prog420.jpg": (src, q + [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "prog444.jpg": (src, q + [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, s, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
        "gray.jpg": (cv2.cvtColor(src, cv2.COLOR_BGR2GRAY), q),
        "restart.jpg": (src, q + [cv2.IMWRITE_JPEG_RST_INTERVAL, 3]),
    }
    for name, (img, params) in files.items():
        ok, buf = cv2.imencode(".jpg", img, params)
        assert ok
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(buf.tobytes())
    ok, buf = cv2.imencode(".jpg", src, q)
    for n in range(2, 9):
        with open(os.path.join(OUT, f"orient{n}.jpg"), "wb") as f:
            f.write(with_orientation(buf.tobytes(), n))


def reference(path):
    # A gray JPEG stays gray in imgproc; cv2.imread would make it BGR.
    gray = os.path.basename(path) == "gray.jpg"
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    img = cv2.bitwise_not(img)
    if not gray:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return {"shape": list(img.shape), "crc32": zlib.crc32(img.tobytes())}


def main():
    make_fixtures()
    refs = {}
    for p in sorted(glob.glob(os.path.join(OUT, "*.jpg"))):
        refs["fixtures/jpeg/" + os.path.basename(p)] = reference(p)
    for p in sorted(glob.glob(os.path.join(CORPUS, "*", "*.jpg"))):
        refs["corpus/" + os.path.relpath(p, CORPUS)] = reference(p)
    with open(os.path.join(OUT, "opencv.json"), "w") as f:
        json.dump({"opencv": cv2.__version__, "references": refs}, f, indent=1)
        f.write("\n")
    print(f"{len(refs)} references in {os.path.relpath(OUT, ROOT)}/opencv.json")


if __name__ == "__main__":
    main()
