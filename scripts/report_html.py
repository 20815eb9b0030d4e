#!/usr/bin/env python3
"""Redraw imgproc's HTML report from a JSON report.

    scripts/report_html.py run.json run.html

The page is the one the binary writes (src/report/page.html, which draws itself from
the data in it); this puts the JSON report's data where the binary puts it: items as
columns, thumbnail paths relative to the new page's folder. Use it to look at an old
run, or at a run made with `--report run.json` only (its gallery is empty then: the
thumbnails are made by the workers during the run). Python 3 standard library only.
"""

import json
import os
import sys

MARK = "__IMGPROC_REPORT_DATA__"
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "report", "page.html")


def columns(records):
    """Records to columns: every key any record has, None where one lacks it."""
    keys = []
    for r in records:
        for k in r:
            if k not in keys:
                keys.append(k)
    return {k: [round(r[k], 4) if isinstance(r.get(k), float) else r.get(k) for r in records] for k in keys}


def relative(path, json_dir, page_dir):
    """A thumbnail path as imgproc wrote it (relative to the folder it ran in, or
    absolute), relative to the new page. Run from another folder, or with the JSON
    report moved together with its thumbnail folder, the file is looked for beside the
    JSON report too."""
    candidates = [path, os.path.join(json_dir, path),
                  os.path.join(json_dir, os.path.basename(os.path.dirname(path)), os.path.basename(path))]
    found = next((c for c in candidates if os.path.exists(c)), path)
    return os.path.relpath(os.path.abspath(found), page_dir).replace(os.sep, "/")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: report_html.py REPORT.json OUT.html\n")
        return 2
    src, dst = argv[1], argv[2]
    try:
        with open(src, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"report_html.py: cannot read the JSON report {src}: {e}\n")
        return 1
    if not isinstance(report, dict) or not isinstance(report.get("items"), list):
        sys.stderr.write(f"report_html.py: {src} is not an imgproc JSON report (no items list)\n")
        return 1
    with open(PAGE, encoding="utf-8") as f:
        page = f.read()
    page_dir = os.path.dirname(os.path.abspath(dst))
    json_dir = os.path.dirname(os.path.abspath(src))
    for item in report["items"]:
        thumbs = item.get("thumbnails")
        if isinstance(thumbs, dict):
            for k, p in thumbs.items():
                if isinstance(p, str):
                    thumbs[k] = relative(p, json_dir, page_dir)
    report["items"] = columns(report["items"])
    data = json.dumps(report, separators=(",", ":"), ensure_ascii=False)
    # Nothing in the data may end its <script> element.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    out = page.replace(MARK, data, 1)
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(out)
    os.replace(tmp, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
