"""Report of the rate-distortion bench (issue 6): PNG plots of PSNR against compression ratio (log x, like the
paper's Figure 3) and the markdown section of BENCHMARKS.md, from the CSVs of ecnr_bench_rd and rd_metrics.py.
Usage: python3 rd_report.py <outdir> --plots DIR --section OUT.md [--splice BENCHMARKS.md] [--wall S] [--date D]
                             [--commit C] [--check]
--splice: puts the section into that file between the bench_rd marker comments (appended when they are absent).
--check: exit 1 when an output is missing or a metric is NaN (the CI's quick mode)."""
import argparse
import csv
import math
import os
import shutil
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATE, ACC = "ZFP fixed-rate", "ZFP fixed-accuracy"
EXTERNAL = ("SPERR", "TTHRESH", "SZ3")
TARGETS = (300, 1000)
STYLE = {"ECNR": ("C3", "o", "-"), ACC: ("C0", "s", "--"), RATE: ("C2", "^", ":")}
EXTERNAL_MARKERS = {"SPERR": ("C1", "D"), "TTHRESH": ("C4", "v"), "SZ3": ("C5", "P")}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fnum(row, key):
    v = row.get(key, "")
    return float(v) if v not in ("", None) else float("nan")


def interpolate(points, cr):
    """PSNR at `cr`, linear in log CR between the measured points that bracket it; NaN outside them."""
    pts = sorted(points)
    for (a, pa), (b, pb) in zip(pts, pts[1:]):
        if a <= cr <= b and b > a:
            return pa + (pb - pa) * (math.log(cr) - math.log(a)) / (math.log(b) - math.log(a))
    return float("nan")


def f1(v, digits=1):
    return "n/a" if math.isnan(v) else ("inf" if math.isinf(v) else "%.*f" % (digits, v))


class Dataset:
    def __init__(self, info, rows, metrics):
        self.info, self.name = info, info["dataset"]
        self.rows = rows
        self.metrics = metrics
        self.ecnr = [r for r in rows if r["codec"] == "ECNR"]
        self.curve = {c: sorted((fnum(r, "cr"), fnum(r, "psnr")) for r in rows
                                if r["codec"] == c and r["role"] == "sweep") for c in (ACC, RATE)}
        self.curve["ECNR"] = sorted((fnum(r, "cr"), fnum(r, "psnr")) for r in self.ecnr)
        self.external = {c: {int(fnum(r, "cr")): fnum(r, "psnr") for r in rows if r["codec"] == c} for c in EXTERNAL}

    def label(self):
        i = self.info
        dims = "%s×%s×%s" % (i["nx"], i["ny"], i["nz"]) + ("×%s" % i["nt"] if i["nt"] != "1" else "")
        return "%s %s" % (self.name, dims)

    def matched(self, codec, index):
        return next((r for r in self.rows if r["codec"] == codec and r["role"] == "matched"
                     and int(r["match"]) == index), None)

    def metric(self, row, key):
        m = self.metrics.get(row["step_file"]) if row and row["step_file"] else None
        return float(m[key]) if m else float("nan")


def psnr_cell(d, codec, cr):
    pts = d.curve[codec]  # sorted by CR
    v = interpolate(pts, cr)
    if not math.isnan(v):
        return f1(v)
    if not pts:
        return "not measured"
    if pts[-1][0] < cr:
        return ("cannot reach (max CR %.0f)" if codec == RATE else "n/a (CR %.0f at most)") % pts[-1][0]
    return "n/a (lowest CR %.0f)" % pts[0][0]


def best_zfp(d, cr):
    """The better of the two ZFP modes' PSNR at `cr` (interpolated; NaN where neither brackets it)."""
    return max((interpolate(d.curve[c], cr) for c in (ACC, RATE)), key=lambda v: -1e9 if math.isnan(v) else v)


def summary(sets):
    """Per dataset, ECNR's PSNR minus the better ZFP mode's at each ECNR point's ratio."""
    lines = []
    for d in sets:
        cells = []
        for e in d.ecnr:
            delta = fnum(e, "psnr") - best_zfp(d, fnum(e, "cr"))
            cells.append("%s at CR %.0f" % ("n/a" if math.isnan(delta) else "%+.1f dB" % delta, fnum(e, "cr")))
        lines.append("- %s: %s." % (d.label(), ", ".join(cells) or "not measured"))
    return "\n".join(lines) + "\n"


def comparison_table(sets):
    head = ("| dataset | CR | ECNR | ZFP fixed-accuracy | ZFP fixed-rate | ECNR − best ZFP (dB) | "
            "SPERR / TTHRESH / SZ3 (external measurement) |\n|---|---|---|---|---|---|---|\n")
    out = []
    for d in sets:
        for cr in TARGETS:
            e = interpolate(d.curve["ECNR"], cr)
            z = best_zfp(d, cr)
            ecnr = psnr_cell(d, "ECNR", cr)
            if not math.isnan(e) and (math.isnan(z) or e > z):
                ecnr = "**%s**" % ecnr
            delta = "n/a" if math.isnan(e) or math.isnan(z) else "%+.1f" % (e - z)
            ext = (" / ".join(f1(d.external[c].get(cr, float("nan"))) for c in EXTERNAL)
                   if d.external["SPERR"] else "—")
            out.append("| %s | %d | %s | %s | %s | %s | %s |" % (d.label(), cr, ecnr, psnr_cell(d, ACC, cr),
                                                              psnr_cell(d, RATE, cr), delta, ext))
    return head + "\n".join(out) + "\n"


def ecnr_points(sets):
    """Per ECNR point: its dataset, (ECNR row, matched ZFP-acc row, matched ZFP-rate row or None where ZFP's fixed
    rate cannot reach the ratio), and the row's first cells."""
    for d in sets:
        for i, e in enumerate(d.ecnr):
            rate = d.matched(RATE, i)
            first = "| %s | %s | %.1f |" % (d.label(), e["setting"].replace("block ", ""), fnum(e, "cr"))
            yield d, (e, d.matched(ACC, i), rate if rate is not None and rate["reached"] == "1" else None), first


def triple(rows, cell):
    """ECNR / ZFP-acc / ZFP-rate cell ("—" for a missing row)."""
    return " / ".join(cell(r) if r else "—" for r in rows)


def per_point_table(sets, columns, cells):
    """One row per ECNR point: dataset, block, CR, then cells(dataset, rows) under `columns`."""
    head = "| dataset | ECNR block | CR | %s |\n|%s\n" % (" | ".join(columns), "---|" * (3 + len(columns)))
    body = ["%s %s |" % (first, " | ".join(cells(d, rows))) for d, rows, first in ecnr_points(sets)]
    return head + "\n".join(body) + "\n"


def chamfer_cell(v):
    return "no surface" if math.isinf(v) else f1(v, 3)


def quality_cells(d, rows):
    e, acc, rate = rows
    psnr = "%s / %s / %s" % (f1(fnum(e, "psnr"), 2), f1(interpolate(d.curve[ACC], fnum(e, "cr")), 2),
                             f1(fnum(rate, "psnr"), 2) if rate else "cannot reach")
    return [psnr, triple(rows, lambda r: f1(fnum(r, "max_abs") / fnum(r, "range"), 4)),
            triple(rows, lambda r: chamfer_cell(d.metric(r, "chamfer"))),
            triple(rows, lambda r: f1(d.metric(r, "ssim"), 4)), "%.1f" % fnum(acc, "cr") if acc else "—"]


def speed_cells(d, rows):
    return [triple(rows, lambda r, k=k, f=f: f % fnum(r, k)) for k, f in
            (("encode_s", "%.3g"), ("decode_s", "%.3g"), ("encode_peak_mib", "%.1f"), ("decode_peak_mib", "%.1f"))]


THREE = ": ECNR / ZFP-acc / ZFP-rate"
QUALITY_COLUMNS = ["PSNR (dB)" + THREE, "max abs err / range" + THREE, "Chamfer (voxels)" + THREE, "SSIM" + THREE,
                   "ZFP-acc point used (CR)"]
SPEED_COLUMNS = ["encode (s)" + THREE, "decode (s)" + THREE, "peak MiB encode" + THREE, "peak MiB decode" + THREE]


def plot(d, path):
    fig, ax = plt.subplots(figsize=(8.6, 4.4), dpi=110)
    for codec in ("ECNR", ACC, RATE):
        pts = [(cr, p) for cr, p in d.curve[codec] if math.isfinite(p)]
        if not pts:
            continue
        color, marker, line = STYLE[codec]
        ax.plot([c for c, _ in pts], [p for _, p in pts], color=color, marker=marker, linestyle=line,
                markersize=6 if codec == "ECNR" else 3.5, linewidth=2 if codec == "ECNR" else 1.2, label=codec)
    for codec in EXTERNAL:
        pts = sorted(d.external[codec].items())
        if pts:
            color, marker = EXTERNAL_MARKERS[codec]
            ax.plot([c for c, _ in pts], [p for _, p in pts], color=color, marker=marker, linestyle="none",
                    markersize=8, markerfacecolor="none", markeredgewidth=1.8,
                    label="%s (external measurement)" % codec)
    for cr in TARGETS:
        ax.axvline(cr, color="0.75", linewidth=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("PSNR (dB, over the data range)")
    ax.set_title(d.label())
    # x: from the lowest ratio measured to a little past ECNR's highest (ZFP's all-zero tail is cut off).
    crs = [c for k in ("ECNR", ACC, RATE) for c, _ in d.curve[k]] + list(TARGETS)
    ax.set_xlim(max(5, min(crs) * 0.8), max([c for c, _ in d.curve["ECNR"]] + list(TARGETS)) * 2.5)
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check(sets, plots):
    problems = []
    for d in sets:
        if not d.ecnr:
            problems.append("%s: no ECNR point" % d.name)
        for r in d.rows:
            # NaN anywhere, and for ECNR also inf (no surface, or a lossless PSNR), means something is broken;
            # a missing metrics row reads as NaN.
            values = [("PSNR", fnum(r, "psnr"))] if r["role"] != "external" else []
            if r["step_file"]:
                values += [(key, d.metric(r, key)) for key in ("chamfer", "ssim")]
            for key, v in values:
                if math.isnan(v) or (r["codec"] == "ECNR" and math.isinf(v)):
                    problems.append("%s: %s %s: %s is %s" % (d.name, r["codec"], r["setting"], key, v))
        if not os.path.isfile(plots[d.name]) or os.path.getsize(plots[d.name]) == 0:
            problems.append("%s: plot missing" % d.name)
    return problems


def coder_settings(d):
    i = d.info
    text = "%s: preset `%s`, block edges %s" % (d.name, i["preset"], i["edges"])
    grid = i["coder_grid"].replace(" ", "")
    if grid != "x".join(i[k] for k in ("nx", "ny", "nz", "nt")):
        text += " on the %s grid (time as z: blocks over x, y, t)" % grid
    return text


def splice(path, section):
    """Replaces the text between the bench_rd markers of `path` (or appends the markers and the section)."""
    begin, end = "<!-- bench_rd begin -->", "<!-- bench_rd end -->"
    with open(path) as f:
        text = f.read()
    block = "%s\n%s\n%s" % (begin, section.rstrip(), end)
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--plots", required=True)
    ap.add_argument("--section", required=True)
    ap.add_argument("--splice", default="")
    ap.add_argument("--wall", type=float, default=float("nan"))
    ap.add_argument("--date", default="")
    ap.add_argument("--commit", default="", help="the commit the bench was built from")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    infos = read_csv(os.path.join(a.outdir, "datasets.csv"))
    rows = defaultdict(list)
    for r in read_csv(os.path.join(a.outdir, "points.csv")):
        rows[r["dataset"]].append(r)
    mpath = os.path.join(a.outdir, "metrics.csv")
    metrics = {m["step_file"]: m for m in read_csv(mpath)} if os.path.isfile(mpath) else {}
    sets = [Dataset(i, rows[i["dataset"]], metrics) for i in infos]
    os.makedirs(a.plots, exist_ok=True)
    for name in ("points", "datasets", "metrics"):  # the measured data beside the plots, to compare runs with
        if os.path.isfile(os.path.join(a.outdir, name + ".csv")):
            shutil.copyfile(os.path.join(a.outdir, name + ".csv"), os.path.join(a.plots, "rd-%s.csv" % name))
    plots, renders = {}, []
    for d in sets:
        plots[d.name] = os.path.join(a.plots, "rd-%s.png" % d.name)
        plot(d, plots[d.name])
        compare = os.path.join(a.outdir, "renders", "%s-compare.png" % d.name)
        if os.path.isfile(compare):
            shutil.copyfile(compare, os.path.join(a.plots, "render-%s.png" % d.name))
            renders.append(d.name)
    with open(os.path.join(a.outdir, "machine.txt")) as f:
        machine = f.read().strip()
    settings = "; ".join(coder_settings(d) for d in sets)
    isos = "; ".join("%s: %s (step %s)" % (d.name, d.info["iso"], d.info["step"]) for d in sets)
    rel = os.path.relpath(a.plots, os.path.dirname(os.path.abspath(a.splice or a.section)))
    wall = "" if math.isnan(a.wall) else " The run took %.1f min." % (a.wall / 60.0)
    text = [
        "## Rate–distortion and speed against ZFP (issue 6)", "",
        "Regenerate: `scripts/bench_rd.sh` (`--quick`: the small generated series only, what CI runs). Datasets "
        "and settings: `Testing/Benchmarks/rd.conf`; `ecnr_bench_rd` (C++: ECNR through the Core API, ZFP "
        "through libzfp) writes `build/bench-rd/points.csv`, `rd_metrics.py` (pvpython, ParaView's VTK) the "
        "Chamfer and SSIM columns, `rd_report.py` this section and the plots.",
        "Measured %s on %s, 2 encoder threads (ZFP serial)%s.%s" % (
            a.date or "(date not given)", machine, ", Core at commit " + a.commit if a.commit else "", wall), "",
        "ECNR settings: %s. ZFP %s sees each array with its singleton axes dropped (4D blocks for a 3D time "
        "series; x, y, t for navy_winds) and stores a full header; fixed accuracy at every power-of-two tolerance "
        "(the only settings that mode distinguishes), fixed rate over log-spaced ratios. PSNR is over the "
        "original's data range, on the whole field." % (settings, machine.split("ZFP ")[-1]), "",
        "### PSNR (dB) at CR 300 and 1000", "",
        "Interpolated linearly in log CR between the measured points that bracket the ratio (\"n/a\": no "
        "bracketing point). ZFP's fixed-rate mode spends at least 1 + 8 bits per block of 4^d values, so it cannot "
        "go above CR 2^(2d)·32/9 (227 in 3D, 910 in 4D). SPERR, TTHRESH and SZ3 are not Debian packages: their "
        "figures are external measurements (issue 4), not run here. Bold: ECNR above the better ZFP mode. Where "
        "ZFP's PSNR flattens out at its highest ratios (the tail of its curves in the plots), its output is close to "
        "zero everywhere: fixed accuracy reaches those ratios only with tolerances near or above the data range.", "",
        comparison_table(sets),
        "ECNR minus the better ZFP mode at each measured ECNR point (ZFP interpolated at that ratio):", "",
        summary(sets),
        "### At ECNR's measured points: ZFP at the same ratio, image- and feature-level metrics", "",
        "ZFP-rate is run at each ECNR point's ratio (rate = 32 / CR bits per value). ZFP-acc's PSNR is interpolated "
        "at that ratio on its sweep; its max error, Chamfer and SSIM are those of the sweep point nearest in log CR "
        "(its CR in the last column). Chamfer: symmetric mean nearest-neighbour distance between the isosurfaces "
        "of original and decoded (vtkFlyingEdges3D; isolines for the 2D navy_winds step; each direction averaged "
        "over up to 20,000 points of one surface against all points of the other, vtkStaticPointLocator), in "
        "voxels (\"no surface\": the decoded step has none at the isovalue), at isovalue %s. SSIM: gaussian-window "
        "SSIM (11×11, σ 1.5) on luminance of volume renderings of the same time step (same transfer function: "
        "viridis over the original's range, opacity from the isovalue up, no shading; same camera; offscreen "
        "pvpython under Xvfb, 384×384), over the image box the original covers (the empty background left out); "
        "the 2D navy_winds step is colour-mapped, not volume-rendered. LPIPS is not reported: it needs pretrained "
        "network weights, which cannot be fetched here." % isos, "",
        per_point_table(sets, QUALITY_COLUMNS, quality_cells),
        "### Speed and memory at the same points", "",
        "Wall-clock seconds. Encode includes serialization; ECNR decode parses the archive and decodes every time "
        "step (boundary CNN included), ZFP decode reads its header and decompresses. Peak memory: the largest "
        "resident size during the operation above the resident size at its start (the input field is already "
        "loaded; /proc/self VmHWM reset per operation), so it counts the codec's working memory and its output.",
        "",
        per_point_table(sets, SPEED_COLUMNS, speed_cells),
        "Plots (PSNR against CR, log x; external measurements as open markers): " +
        ", ".join("[%s](%s/rd-%s.png)" % (d.name, rel, d.name) for d in sets) + ". Renderings (original | ECNR at "
        "the point nearest CR 300 | ZFP fixed accuracy nearest that ratio): " +
        ", ".join("[%s](%s/render-%s.png)" % (n, rel, n) for n in renders) + ". The measured data: "
        "[rd-points.csv](%s/rd-points.csv) (every point), [rd-metrics.csv](%s/rd-metrics.csv) (Chamfer, SSIM), "
        "[rd-datasets.csv](%s/rd-datasets.csv)." % (rel, rel, rel), "",
    ]
    section = "\n".join(text)
    with open(a.section, "w") as f:
        f.write(section)
    if a.splice:
        splice(a.splice, section)
    if a.check:
        problems = check(sets, plots)
        for p in problems:
            print("rd_report: " + p, file=sys.stderr)
        if problems or not sets:
            print("rd_report: check failed" if sets else "rd_report: no dataset", file=sys.stderr)
            sys.exit(1)
        print("rd_report: check passed (%d datasets, %d points)" % (len(sets), sum(len(d.rows) for d in sets)))


if __name__ == "__main__":
    main()
