#!/usr/bin/env python3
"""Peak memory and exit code of --max-memory-mb cases, for two imgproc binaries side by
side (alternating runs; peak resident size from GNU time, the median of --runs).

    scripts/memory_cap.py --before OLD_BIN [--after target/release/imgproc]

Cases: a 400-megapixel gray PNG (a few hundred KB on disk) with --max-memory-mb 64, as
a run and as --dry-run; an 18-megapixel photo as JPEG and as PNG, through blur and
canny, with --max-memory-mb set to what the newer binary says the item needs."""
import argparse, os, re, statistics, struct, subprocess, sys, tempfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "..", "..", "shared", "corpus", "photos", "Elephants_5640x3172.jpg")


def huge_png(path, w, h):
    """A gray PNG written row by row (never whole in memory)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" + bytes((x // 64) % 256 for x in range(w))
    z = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        buf = b""
        for _ in range(h):
            buf += z.compress(row)
            if len(buf) > 1 << 20:
                f.write(chunk(b"IDAT", buf)); buf = b""
        buf += z.flush()
        f.write(chunk(b"IDAT", buf) + chunk(b"IEND", b""))


def run(binary, args, cwd):
    """(exit code, peak resident MiB, seconds, stderr) of one run."""
    rss = os.path.join(cwd, ".rss")
    p = subprocess.run(["/usr/bin/time", "-f", "%M %e", "-o", rss, binary] + args, cwd=cwd,
                       capture_output=True, text=True)
    kib, secs = open(rss).read().split("\n")[-2].split()
    return p.returncode, int(kib) / 1024, float(secs), p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=os.path.join(HERE, "..", "target", "release", "imgproc"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    huge_png(os.path.join(d, "huge.png"), 20000, 20000)
    subprocess.run([a.after, "--op", "invert", "--format", "png", "-o", d, "-q", PHOTO], check=True)
    os.rename(os.path.join(d, "Elephants_5640x3172.png"), os.path.join(d, "photo.png"))
    subprocess.run(["cp", PHOTO, os.path.join(d, "photo.jpg")], check=True)
    common = ["-o", "out", "-q", "--backend", "cpu"]
    cases = [("400 MP PNG, blur, cap 64 MiB", ["--op", "blur", "--max-pixels", "500000000", "--max-memory-mb", "64", "huge.png"]),
             ("same, --dry-run", ["--op", "blur", "--max-pixels", "500000000", "--max-memory-mb", "64", "--dry-run", "huge.png"])]
    for inp in ["photo.jpg", "photo.png"]:
        for op in ["blur", "canny"]:
            probe = run(a.after, ["--op", op, "--max-memory-mb", "1"] + common + [inp], d)[3]
            need = re.search(r"raise --max-memory-mb to (\d+)", probe).group(1)
            cases.append((f"18 MP {inp[-3:].upper()}, {op} to {inp[-3:]}, cap {need} MiB", ["--op", op, "--max-memory-mb", need, inp]))
    print(f"{'case':44} {'before: exit, peak MiB, s':>26} {'after: exit, peak MiB, s':>26}")
    for name, args in cases:
        got = {"before": [], "after": []}
        for _ in range(a.runs):
            for k, b in (("before", a.before), ("after", a.after)):
                subprocess.run(["rm", "-rf", os.path.join(d, "out")])
                got[k].append(run(b, args + common, d)[:3])
        cells = []
        for k in ("before", "after"):
            codes = sorted({g[0] for g in got[k]})
            cells.append(f"{'/'.join(map(str, codes)):>5} {statistics.median(g[1] for g in got[k]):9.0f} {statistics.median(g[2] for g in got[k]):9.2f}")
        print(f"{name:44} {cells[0]:>26} {cells[1]:>26}")


if __name__ == "__main__":
    sys.exit(main())
