"""pvpython: the writer's quality Mode (issue 8) through ParaView. Saves the Gray-Scott series with
Mode = Max relative error, reads it back and checks every voxel of every time step against the bound; with the
reader's ErrorCorrection off the network alone is further off; Mode = Ratio lands within 10 % of its ratio.
Usage: pvpython TestECNRQualityModes.py <ecnr CLI> <work folder>"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import *  # noqa: E402,F401,F403

SETTINGS = dict(Preset="fast", Epochs="4,4,4", Threads=2, BoundaryCNN=0)
REL = 1e-3

cli, work = sys.argv[1], sys.argv[2]
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(32, 32, 32, 4),
                             extra_arrays=False)
nt = v.shape[0]
bound = REL * float(v.max() - v.min())
check = td.Checks()


def decoded(reader, t):
    return td.decoded_step(reader, t).reshape(v.shape[1:])


src = PVDReader(FileName=pvd)

# 1. Max relative error: every voxel of every step within REL x range.
bounded = os.path.join(work, "bounded.ecnr")
writer = CreateWriter(bounded, src, Mode=4, ModeValue=REL, **SETTINGS)
writer.UpdatePipeline()
reader = OpenDataFile(bounded)
worst = max(float(np.abs(decoded(reader, t) - v[i]).max()) for i, t in enumerate(td.times(nt)))
check(worst <= bound, "max abs error %.3g <= bound %.3g on every step" % (worst, bound))
reader.ErrorCorrection = 0
alone = max(float(np.abs(decoded(reader, t) - v[i]).max()) for i, t in enumerate(td.times(nt)))
check(alone > bound, "without the correction the network alone is off by %.3g (> bound)" % alone)
info = os.popen("'%s' info '%s'" % (cli, bounded)).read()
check("mode max-error" in info and "guaranteed bound" in info, "ecnr info shows the mode and the bound")

# 2. Ratio: the archive within 10 % of the target.
target = 20.0
sized = os.path.join(work, "ratio.ecnr")
writer = CreateWriter(sized, src, Mode=1, ModeValue=target, **SETTINGS)
writer.UpdatePipeline()
ratio = v.size * 4.0 / os.path.getsize(sized)
check(abs(ratio / target - 1.0) <= 0.1, "ratio %.1f within 10 %% of %.0f" % (ratio, target))

# 3. A bad mode value is refused and leaves no file.
bad = os.path.join(work, "bad.ecnr")
writer = CreateWriter(bad, src, Mode=2, ModeValue=-3, **SETTINGS)
writer.UpdatePipeline()
check(not os.path.exists(bad), "a negative PSNR target writes nothing")

check.finish()
