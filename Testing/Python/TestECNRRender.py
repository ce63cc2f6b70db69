"""Offscreen rendering under Xvfb: volume rendering and an isosurface of the decoded data next to the same
renderings of the original. Saves the PNGs (kept as test artifacts in the work folder) and checks that they are
not blank and that decoded and original images are close.
Usage: xvfb-run -a pvpython TestECNRRender.py <ecnr CLI> <work folder>"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import *  # noqa: E402,F401,F403

MAX_MEAN_DIFF = 12.0  # mean |difference| per channel (0-255) allowed between decoded and original images
cli, work = sys.argv[1], sys.argv[2]
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(32, 32, 32, 4), extra_arrays=False)
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


original = PVDReader(FileName=pvd)
archive = os.path.join(work, "gs.ecnr")
# No boundary CNN: its training (300 steps) would make this encode the longest part of a rendering test.
SaveData(archive, proxy=original, Preset="fast", Epochs="5,5,5", BlockSize=[16, 16, 8], Threads=2, BoundaryCNN=0)
decoded = OpenDataFile(archive)
t = td.times(4)[2]
lo, hi = float(v.min()), float(v.max())

view = CreateView("RenderView")
view.ViewSize = [480, 480]
view.OrientationAxesVisibility = 0
view.Background = [0.32, 0.34, 0.43]
view.ViewTime = t
lut = GetColorTransferFunction("V")
lut.ApplyPreset("Viridis (matplotlib)", True)
lut.RescaleTransferFunction(lo, hi)
GetOpacityTransferFunction("V").RescaleTransferFunction(lo, hi)
lut.AutomaticRescaleRangeMode = "Never"


def camera():
    view.CameraPosition = [1 + 8 - 60, -2 + 8 - 45, 3 + 12 + 50]
    view.CameraFocalPoint = [1 + 7.75, -2 + 7.75, 3 + 11.625]
    view.CameraViewUp = [0, 0, 1]
    view.CameraParallelProjection = 0
    view.ResetCamera()


def shoot(source, kind, name):
    if kind == "volume":
        d = Show(source, view)
        d.SetRepresentationType("Volume")
        ColorBy(d, ("POINTS", "V"))
    else:
        iso = Contour(Input=source, ContourBy=["POINTS", "V"], Isosurfaces=[0.2])
        d = Show(iso, view)
        ColorBy(d, None)
        d.DiffuseColor = [0.9, 0.6, 0.3]
    camera()
    path = os.path.join(work, "%s_%s.png" % (name, kind))
    SaveScreenshot(path, view, ImageResolution=[480, 480])
    Hide(iso if kind != "volume" else source, view)
    return path


rows = []
for kind in ("volume", "isosurface"):
    a = td.load_png(shoot(original, kind, "original"))
    b = td.load_png(shoot(decoded, kind, "decoded"))
    rows.append(np.concatenate([a, b], axis=1))
    background = np.all(np.abs(a - a[0, 0]) < 2, axis=2)
    covered = 1.0 - background.mean()
    diff = float(np.mean(np.abs(a - b)))
    print("%s: original covers %.0f%% of the image, mean |decoded - original| = %.2f (0-255)" %
          (kind, 100 * covered, diff))
    check(covered > 0.05 and a.std() > 5 and b.std() > 5, "%s images are not blank" % kind)
    check(diff < MAX_MEAN_DIFF, "%s: decoded looks like the original (%.2f < %.1f)" % (kind, diff, MAX_MEAN_DIFF))

# original | decoded, volume rendering above the isosurface (the README's screenshot)
td.save_png(np.concatenate(rows[::-1], axis=0), os.path.join(work, "comparison.png"))

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed; images in %s" % work)
