"""Test data for the ParaView tests: the embedded Gray-Scott series (from `ecnr generate`) written as a .vti
series with a .pvd index, so that it reaches the plugin through an ordinary ParaView reader; RGB PNG reading and
writing for the rendering checks (also used by Testing/Benchmarks/rd_metrics.py)."""
import os
import subprocess

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkIOImage import vtkPNGReader, vtkPNGWriter
from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

SPACING = (0.5, 0.5, 0.75)
ORIGIN = (1.0, -2.0, 3.0)


def times(n):
    return [0.5 + 0.25 * i for i in range(n)]


def gray_scott_pvd(ecnr_cli, folder, size=(32, 32, 32, 6), extra_arrays=True):
    """Writes folder/gs.pvd (+ gs_<i>.vti) and returns (pvd path, V as a (t, z, y, x) float32 array).
    Arrays: V (float32, the generator's field); with extra_arrays also Vq (int16, V quantized: the integer
    conversion path) and Grad (3 components: not compressible, skipped by default)."""
    os.makedirs(folder, exist_ok=True)
    npy = os.path.join(folder, "gs.npy")
    subprocess.run([ecnr_cli, "generate", npy, "--size", ",".join(str(s) for s in size)], check=True,
                   stdout=subprocess.DEVNULL)
    v = np.load(npy).astype(np.float32)
    if v.ndim == 3:
        v = v[np.newaxis]
    nt, nz, ny, nx = v.shape
    entries = []
    for i, t in enumerate(times(nt)):
        img = vtkImageData()
        img.SetDimensions(nx, ny, nz)
        img.SetSpacing(*SPACING)
        img.SetOrigin(*ORIGIN)
        arr = numpy_to_vtk(v[i].ravel(), deep=1)
        arr.SetName("V")
        img.GetPointData().AddArray(arr)
        img.GetPointData().SetActiveScalars("V")
        if extra_arrays:
            q = numpy_to_vtk(np.round(v[i].ravel() * 1000.0).astype(np.int16), deep=1)
            q.SetName("Vq")
            img.GetPointData().AddArray(q)
            g = np.stack(np.gradient(v[i]), axis=-1).reshape(-1, 3).astype(np.float32)
            ga = numpy_to_vtk(g, deep=1)
            ga.SetName("Grad")
            img.GetPointData().AddArray(ga)
        name = "gs_%d.vti" % i
        w = vtkXMLImageDataWriter()
        w.SetFileName(os.path.join(folder, name))
        w.SetInputData(img)
        w.Write()
        entries.append('    <DataSet timestep="%r" file="%s"/>' % (t, name))
    pvd = os.path.join(folder, "gs.pvd")
    with open(pvd, "w") as f:
        f.write('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n  <Collection>\n')
        f.write("\n".join(entries) + "\n  </Collection>\n</VTKFile>\n")
    return pvd, v


def psnr(original, decoded):
    rng = float(original.max() - original.min())
    mse = float(np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 20 * np.log10(rng) - 10 * np.log10(mse)


def load_png(path):
    """RGB pixels of a PNG as float64, shape (rows, cols, 3), first row = bottom of the image (VTK's order)."""
    r = vtkPNGReader()
    r.SetFileName(path)
    r.Update()
    img = r.GetOutput()
    nx, ny, _ = img.GetDimensions()
    return vtk_to_numpy(img.GetPointData().GetScalars()).reshape(ny, nx, -1)[:, :, :3].astype(np.float64)


def save_png(pixels, path):
    """Writes RGB pixels (rows, cols, 3; values 0-255) in the order load_png returns them."""
    ny, nx, _ = pixels.shape
    img = vtkImageData()
    img.SetDimensions(nx, ny, 1)
    img.GetPointData().SetScalars(numpy_to_vtk(pixels.reshape(-1, 3).astype(np.uint8), deep=1))
    w = vtkPNGWriter()
    w.SetFileName(path)
    w.SetInputData(img)
    w.Write()


class Checks:
    """check(ok, what) prints ok/FAIL lines and remembers failures; finish() exits 1 when any failed."""

    def __init__(self):
        self.failures = []

    def __call__(self, ok, what):
        print(("ok:   " if ok else "FAIL: ") + what)
        if not ok:
            self.failures.append(what)

    def finish(self):
        if self.failures:
            print("%d check(s) failed" % len(self.failures))
            raise SystemExit(1)
        print("all checks passed")


def decoded_step(reader, t, name="V"):
    """The reader's local output array `name` at time t, as a flat numpy array."""
    reader.UpdatePipeline(t)
    out = reader.GetClientSideObject().GetOutputDataObject(0)
    return vtk_to_numpy(out.GetPointData().GetArray(name))
