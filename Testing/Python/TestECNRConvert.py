"""The batch conversion script: .pvd -> .ecnr -> .pvd, and raw float32 with --raw-dims -> .ecnr.
Usage: pvpython TestECNRConvert.py <ecnr_convert.py> <ecnr CLI> <work folder>"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import OpenDataFile  # noqa: E402
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402

script, cli, work = sys.argv[1], sys.argv[2], sys.argv[3]
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(32, 32, 16, 3), extra_arrays=False)
tiny = ["--preset", "fast", "--epochs", "5,5,5", "--block", "16,16,8", "--threads", "2"]
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run(["pvpython", script] + list(args), capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        print(r.stderr)
    return r.returncode


archive = os.path.join(work, "gs.ecnr")
check(run(pvd, archive, *tiny) == 0 and os.path.exists(archive), "pvd -> ecnr")
back = os.path.join(work, "back", "gs_back.pvd")
os.makedirs(os.path.dirname(back), exist_ok=True)
check(run(archive, back) == 0 and os.path.exists(back), "ecnr -> pvd")
series = OpenDataFile(back)
check(list(series.TimestepValues) == td.times(3), "round trip keeps the time values")
for i, t in enumerate(td.times(3)):
    series.UpdatePipeline(t)
    d = series.GetClientSideObject().GetOutputDataObject(0)
    p = td.psnr(v[i], vtk_to_numpy(d.GetPointData().GetArray("V")).reshape(v.shape[1:]))
    check(p > 24.0, "step %d PSNR %.2f dB after pvd -> ecnr -> pvd" % (i, p))

raw = os.path.join(work, "gs.raw")
v.astype("<f4").tofile(raw)
raw_archive = os.path.join(work, "raw.ecnr")
check(run(raw, raw_archive, "--raw-dims", "32,32,16,3", "--raw-name", "V", *tiny) == 0, "raw -> ecnr")
r = OpenDataFile(raw_archive)
check(list(r.PointArrays) == ["V"] and len(r.TimestepValues) == 3, "raw archive has V and 3 steps")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
