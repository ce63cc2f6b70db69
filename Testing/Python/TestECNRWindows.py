"""pvpython: the writer's TimeWindow (issue 9): a series saved as independent windows of 2 steps reads back with
every time value, each step decoded from its window with the PSNR of a whole-series archive.
Usage: pvpython TestECNRWindows.py <ecnr CLI> <work folder>"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import *  # noqa: E402,F401,F403
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402

PSNR_FLOOR = 28.0  # dB per step with these tiny settings
cli, work = sys.argv[1], sys.argv[2]
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(24, 24, 24, 5), extra_arrays=False)
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


archive = os.path.join(work, "windows.ecnr")
writer = CreateWriter(archive, PVDReader(FileName=pvd), Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0,
                      TimeWindow=2)
writer.UpdatePipeline()
info = subprocess.run([cli, "info", archive], capture_output=True, text=True).stdout
check("in 3 time windows" in info, "the archive holds 3 windows")
reader = OpenDataFile(archive)
check(np.allclose(reader.TimestepValues, td.times(v.shape[0])), "time values %s" % list(reader.TimestepValues))
rng = float(v.max() - v.min())
for i, t in enumerate(td.times(v.shape[0])):
    reader.UpdatePipeline(t)
    out = reader.GetClientSideObject().GetOutputDataObject(0)
    d = vtk_to_numpy(out.GetPointData().GetArray("V")).reshape(v.shape[1:])
    psnr = 20 * np.log10(rng) - 10 * np.log10(np.mean((d.astype(np.float64) - v[i]) ** 2))
    check(psnr > PSNR_FLOOR, "step %d: PSNR %.1f dB" % (i, psnr))

# Append: the same steps again, 10 time units later, as new windows of the same file (a pvbatch script walking
# a running simulation's output); then steps whose times do not follow are refused and the file is kept.
later = os.path.join(work, "data", "later.pvd")
with open(pvd) as f:
    text = f.read()
for t in td.times(v.shape[0]):
    text = text.replace('timestep="%r"' % t, 'timestep="%r"' % (t + 10.0))
with open(later, "w") as f:
    f.write(text)
writer = CreateWriter(archive, PVDReader(FileName=later), Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0,
                      TimeWindow=5, Append=1)
writer.UpdatePipeline()
reader = OpenDataFile(archive)
times = list(reader.TimestepValues)
check(len(times) == 2 * v.shape[0] and times[-1] == td.times(v.shape[0])[-1] + 10.0, "appended times %s" % times)
reader.UpdatePipeline(times[-1])
out = reader.GetClientSideObject().GetOutputDataObject(0)
d = vtk_to_numpy(out.GetPointData().GetArray("V")).reshape(v.shape[1:])
psnr = 20 * np.log10(rng) - 10 * np.log10(np.mean((d.astype(np.float64) - v[-1]) ** 2))
check(psnr > PSNR_FLOOR, "last appended step: PSNR %.1f dB" % psnr)
size = os.path.getsize(archive)
writer = CreateWriter(archive, PVDReader(FileName=pvd), Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0,
                      Append=1)
writer.UpdatePipeline()
check(os.path.getsize(archive) == size, "steps at earlier times are refused and the archive is kept")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
