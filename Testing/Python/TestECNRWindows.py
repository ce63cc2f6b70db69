"""pvpython: the writer's TimeWindow (issue 9): a series saved as independent windows of 2 steps reads back with
every time value, each step decoded from its window with the PSNR of a whole-series archive. The writer stages
the series on disk while it walks the steps (never holding it): no staging file is left behind, StagingDirectory
moves them, and a staging folder that cannot be written fails the write with nothing written.
Usage: pvpython TestECNRWindows.py <ecnr CLI> <work folder>"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import *  # noqa: E402,F401,F403

PSNR_FLOOR = 25.0  # dB per step (over the step's own range) with these tiny settings
cli, work = sys.argv[1], sys.argv[2]
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(32, 32, 32, 5), extra_arrays=False)
check = td.Checks()


archive = os.path.join(work, "windows.ecnr")
writer = CreateWriter(archive, PVDReader(FileName=pvd), Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0,
                      TimeWindow=2)
writer.UpdatePipeline()
info = subprocess.run([cli, "info", archive], capture_output=True, text=True).stdout
check("in 3 time windows" in info, "the archive holds 3 windows")
reader = OpenDataFile(archive)
check(np.allclose(reader.TimestepValues, td.times(v.shape[0])), "time values %s" % list(reader.TimestepValues))
for i, t in enumerate(td.times(v.shape[0])):
    psnr = td.psnr(v[i], td.decoded_step(reader, t).reshape(v.shape[1:]))
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
psnr = td.psnr(v[-1], td.decoded_step(reader, times[-1]).reshape(v.shape[1:]))
check(psnr > PSNR_FLOOR, "last appended step: PSNR %.1f dB" % psnr)
size = os.path.getsize(archive)
writer = CreateWriter(archive, PVDReader(FileName=pvd), Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0,
                      Append=1)
writer.UpdatePipeline()
check(os.path.getsize(archive) == size, "steps at earlier times are refused and the archive is kept")


def staging_files(folder):
    return [f for f in os.listdir(folder) if f.startswith(".ecnr-staging-")]


check(staging_files(work) == [], "no staging file left beside the archives: %s" % staging_files(work))
stage = os.path.join(work, "stage")
os.makedirs(stage, exist_ok=True)
moved = os.path.join(work, "staged.ecnr")
writer = CreateWriter(moved, PVDReader(FileName=pvd), Preset="fast", Epochs="2,2,2", Threads=2, BoundaryCNN=0,
                      StagingDirectory=stage)
writer.UpdatePipeline()
check(os.path.exists(moved) and staging_files(stage) == [], "staged in StagingDirectory, then removed")
missing = os.path.join(work, "nowhere.ecnr")
writer = CreateWriter(missing, PVDReader(FileName=pvd), Preset="fast", Epochs="2,2,2", Threads=2, BoundaryCNN=0,
                      StagingDirectory=os.path.join(work, "no", "such", "folder"))
writer.UpdatePipeline()
check(not os.path.exists(missing), "a staging folder that cannot be written: no archive written")

check.finish()
