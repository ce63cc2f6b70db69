"""mpiexec -n 2 pvbatch: the writer runs under MPI (rank 0 reads the grid, every rank trains its share of each
scale's MLPs, rank 0 writes; the file must equal the one pvpython writes alone), then the reader decodes one
piece per rank. Checks, from what each rank itself reports (a programmable filter saves its piece), that every
rank decoded only its own piece (extent and block evaluations) and that the pieces together equal the serial
decode. Usage: pvpython TestECNRParallel.py <ecnr CLI> <work folder> (the serial reference), then
       mpiexec -n 2 pvbatch TestECNRParallel.py <ecnr CLI> <work folder>"""
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecnr_testdata as td  # noqa: E402

from paraview.simple import *  # noqa: E402,F401,F403
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkParallelCore import vtkMultiProcessController  # noqa: E402

cli, work = sys.argv[1], sys.argv[2]
ranks = vtkMultiProcessController.GetGlobalController().GetNumberOfProcesses()
pvd, v = td.gray_scott_pvd(cli, os.path.join(work, "data"), size=(32, 32, 32, 4), extra_arrays=False)
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


src = PVDReader(FileName=pvd)
settings = dict(Preset="fast", Epochs="5,5,5", BlockSize=[8, 8, 8], Threads=1, Pruning=1)
serial = os.path.join(work, "gs_serial.ecnr")
if ranks == 1:
    # The reference: the same writer and settings in one process (pvpython), before the mpiexec run.
    SaveData(serial, proxy=src, **settings)
    print("serial reference written" if os.path.exists(serial) else "FAIL: no serial reference")
    sys.exit(0 if os.path.exists(serial) else 1)

check(ranks >= 2, "running on %d ranks" % ranks)
archive = os.path.join(work, "gs_mpi.ecnr")
if os.path.exists(archive):
    os.remove(archive)
SaveData(archive, proxy=src, **settings)
check(os.path.exists(archive), "the writer works under MPI")
# The encode is split over the ranks (each scale's MLPs); the file is the one a single process writes.
check(os.path.exists(serial) and open(archive, "rb").read() == open(serial, "rb").read(),
      "the archive written on %d ranks is the same file as the serial one" % ranks)

pieces = os.path.join(work, "pieces")
os.makedirs(pieces, exist_ok=True)
for f in glob.glob(os.path.join(pieces, "*")):
    os.remove(f)
t = td.times(4)[2]
reader = ECNRReader(FileName=archive)
dump = ProgrammableFilter(Input=reader)
dump.Script = """
import json, numpy as np
from vtkmodules.vtkParallelCore import vtkMultiProcessController
from vtkmodules.util.numpy_support import vtk_to_numpy
data = self.GetInputDataObject(0, 0)
self.GetOutputDataObject(0).ShallowCopy(data)
rank = vtkMultiProcessController.GetGlobalController().GetLocalProcessId()
fd = data.GetFieldData()
info = dict(rank=rank, extent=list(data.GetExtent()),
            evaluations=int(fd.GetArray("ECNRBlockEvaluations").GetValue(0)),
            decoded=[int(fd.GetArray("ECNRDecodedExtent").GetValue(i)) for i in range(6)])
np.save("%s/piece_%%d.npy" %% rank, vtk_to_numpy(data.GetPointData().GetArray("V")))
json.dump(info, open("%s/piece_%%d.json" %% rank, "w"))
""" % (pieces, pieces)
dump.UpdatePipeline(t)
check(tuple(dump.GetDataInformation().GetExtent()) == (0, 31, 0, 31, 0, 31), "all pieces cover the grid")

# Serial reference on rank 0: the same reader class, the whole extent, no pieces.
ref = ECNRReader(FileName=archive).GetClientSideObject()
ref.UpdateInformation()
ref.UpdateTimeStep(t)
whole = ref.GetOutputDataObject(0)
serial = vtk_to_numpy(whole.GetPointData().GetArray("V")).reshape(32, 32, 32)
serial_evals = int(whole.GetFieldData().GetArray("ECNRBlockEvaluations").GetValue(0))
print("serial decode: %d block evaluations" % serial_evals)

infos = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(pieces, "piece_*.json")))]
check(len(infos) == ranks, "%d ranks reported a piece" % len(infos))
covered = np.zeros((32, 32, 32), dtype=np.int32)
worst = 0.0
for info in infos:
    x0, x1, y0, y1, z0, z1 = info["extent"]
    print("rank %d: extent %s, %d block evaluations" % (info["rank"], info["extent"], info["evaluations"]))
    check(info["decoded"] == info["extent"], "rank %d decoded exactly its extent" % info["rank"])
    check(0 < info["evaluations"] < serial_evals,
          "rank %d evaluated %d < %d blocks (its piece only)" % (info["rank"], info["evaluations"], serial_evals))
    piece = np.load(os.path.join(pieces, "piece_%d.npy" % info["rank"]))
    piece = piece.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
    worst = float(np.fmax(worst, np.abs(piece - serial[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1]).max()))
    covered[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1] += 1
# Point-data pieces of an image share their boundary plane of points (the cells are split, not the points).
check(covered.min() >= 1, "the pieces cover every voxel")
print("max |piece - serial| = %g" % worst)
check(worst <= 1e-6 * float(serial.max() - serial.min()), "the pieces together equal the serial decode")
check(td.psnr(v[2], serial) > 24.0, "serial decode PSNR %.2f dB" % td.psnr(v[2], serial))

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
