"""Feature- and image-level metrics of the rate-distortion bench (issue 6), on the time steps that ecnr_bench_rd
wrote: for each decoded step against the original step of its dataset,
  chamfer  symmetric mean nearest-neighbour distance (voxels) between the isosurfaces at the dataset's isovalue
           (vtkFlyingEdges3D; isolines with vtkFlyingEdges2D where the step is 2D), each direction averaged over
           up to MAX_QUERY points of one surface (uniform stride) against every point of the other
           (vtkStaticPointLocator);
  ssim     SSIM (gaussian window, sigma 1.5, on luminance) between volume renderings of original and decoded
           with the same transfer function and camera (offscreen, VTK's smart volume mapper; a 2D step is
           colour-mapped instead of rendered), over the box of the image that the original covers.
Usage: Testing/Python/with_xvfb.sh pvpython rd_metrics.py <outdir>   (reads outdir/{datasets,points}.csv, writes
outdir/metrics.csv, outdir/renders/*.png and, per dataset, outdir/renders/<dataset>-compare.png: original | the ECNR
point nearest CR 300 | ZFP fixed accuracy matched to it)."""
import csv
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Python"))
from ecnr_testdata import save_png  # noqa: E402
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction, vtkStaticPointLocator
from vtkmodules.vtkFiltersCore import vtkFlyingEdges2D, vtkFlyingEdges3D
from vtkmodules.vtkImagingCore import vtkImageMapToColors
from vtkmodules.vtkRenderingCore import (vtkColorTransferFunction, vtkRenderWindow, vtkRenderer, vtkVolume,
                                         vtkVolumeProperty, vtkWindowToImageFilter)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL render window)

MAX_QUERY = 20000  # query points per direction of the Chamfer distance
IMAGE = 384        # rendering size (pixels)
# Opacity at the isovalue and at the top of the data range, per 1/64 of the volume's largest extent (transparent
# below iso - 10 % of the range); no shading (ParaView's default: gradient shading turns the few-percent noise of a
# flat region into texture, which would dominate the image difference).
OPACITY = (0.06, 0.2)
# Viridis, sampled at 0, 1/4, 1/2, 3/4, 1 of the original's data range.
VIRIDIS = [(0.267, 0.005, 0.329), (0.229, 0.322, 0.546), (0.128, 0.567, 0.551), (0.369, 0.789, 0.383),
           (0.993, 0.906, 0.144)]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_step(path, nx, ny, nz):
    a = np.fromfile(path, dtype="<f4")
    if a.size != nx * ny * nz:
        raise SystemExit("rd_metrics: %s has %d values, expected %d" % (path, a.size, nx * ny * nz))
    return a


def image(values, nx, ny, nz):
    img = vtkImageData()
    img.SetDimensions(nx, ny, nz)
    arr = numpy_to_vtk(values, deep=1)
    arr.SetName("v")
    img.GetPointData().SetScalars(arr)
    return img


def surface_points(img, iso):
    """Points of the isosurface (isolines for a 2D step) at iso, in voxel units."""
    fe = vtkFlyingEdges2D() if img.GetDimensions()[2] == 1 else vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, iso)
    fe.Update()
    pts = fe.GetOutput().GetPoints()
    return fe.GetOutput(), (vtk_to_numpy(pts.GetData()).astype(np.float64) if pts is not None else np.zeros((0, 3)))


def mean_nn_distance(query, target_poly, target_pts):
    """Mean distance from up to MAX_QUERY points of `query` (uniform stride) to their nearest point of the target."""
    locator = vtkStaticPointLocator()
    locator.SetDataSet(target_poly)
    locator.BuildLocator()
    sample = query[::max(1, int(math.ceil(len(query) / MAX_QUERY)))]
    total = 0.0
    for p in sample:
        q = target_pts[locator.FindClosestPoint(p)]
        total += math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2)
    return total / len(sample)


def chamfer(a, b):
    """Symmetric mean nearest-neighbour distance; inf when only one of the two has a surface."""
    (pa, xa), (pb, xb) = a, b
    if len(xa) == 0 or len(xb) == 0:
        return 0.0 if len(xa) == len(xb) else float("inf")
    return 0.5 * (mean_nn_distance(xa, pb, xb) + mean_nn_distance(xb, pa, xa))


def colors(lo, hi):
    ctf = vtkColorTransferFunction()
    for i, c in enumerate(VIRIDIS):
        ctf.AddRGBPoint(lo + (hi - lo) * i / (len(VIRIDIS) - 1), *c)
    return ctf


class Renderer:
    """One offscreen window and camera per dataset: every step of the dataset is drawn with the same view."""

    def __init__(self, lo, hi, iso, dims):
        self.lo, self.hi, self.dims = lo, hi, dims
        self.ctf = colors(lo, hi)
        self.otf = vtkPiecewiseFunction()
        r = hi - lo
        start = min(max(iso - 0.1 * r, lo), hi)
        self.otf.AddPoint(lo, 0.0)
        self.otf.AddPoint(start, 0.0)
        self.otf.AddPoint(max(iso, start), OPACITY[0])
        self.otf.AddPoint(hi, OPACITY[1])
        self.window = None

    def _setup(self):
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(IMAGE, IMAGE)
        self.ren = vtkRenderer()
        self.ren.SetBackground(0.1, 0.1, 0.12)
        self.window.AddRenderer(self.ren)
        self.mapper = vtkSmartVolumeMapper()
        prop = vtkVolumeProperty()
        prop.SetColor(self.ctf)
        prop.SetScalarOpacity(self.otf)
        prop.SetInterpolationTypeToLinear()
        prop.SetScalarOpacityUnitDistance(max(self.dims) / 64.0)
        prop.ShadeOff()
        self.volume = vtkVolume()
        self.volume.SetMapper(self.mapper)
        self.volume.SetProperty(prop)
        self.ren.AddVolume(self.volume)

    def render(self, img):
        """RGB pixels (float64, rows x cols x 3, 0-255) of the step."""
        if self.dims[2] == 1:  # a 2D step: the colour-mapped field itself
            lut = vtkLookupTable()
            lut.SetNumberOfTableValues(256)
            lut.SetRange(self.lo, self.hi)
            for i in range(256):
                lut.SetTableValue(i, *self.ctf.GetColor(self.lo + (self.hi - self.lo) * i / 255.0), 1.0)
            m = vtkImageMapToColors()
            m.SetLookupTable(lut)
            m.SetOutputFormatToRGB()
            m.SetInputData(img)
            m.Update()
            out = m.GetOutput()
        else:
            first = self.window is None
            if first:
                self._setup()
            self.mapper.SetInputData(img)
            if first:
                cam = self.ren.GetActiveCamera()
                self.ren.ResetCamera()
                cam.Azimuth(35)
                cam.Elevation(25)
                cam.OrthogonalizeViewUp()
                self.ren.ResetCamera()
                cam.Zoom(1.05)
            self.window.Render()
            grab = vtkWindowToImageFilter()
            grab.SetInput(self.window)
            grab.ReadFrontBufferOff()
            grab.Update()
            out = grab.GetOutput()
        w, h, _ = out.GetDimensions()
        return vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[:, :, :3].astype(np.float64)


def gaussian_filter_valid(x, window):
    """Separable correlation with `window` along both axes, 'valid' region only."""
    n = len(window)
    rows = sum(window[k] * x[k:x.shape[0] - n + 1 + k, :] for k in range(n))
    return sum(window[k] * rows[:, k:x.shape[1] - n + 1 + k] for k in range(n))


def object_box(reference, margin=8):
    """Rows and columns of the reference image that the data covers (pixels off the background colour, taken at
    the corner), widened by `margin`: SSIM is computed there, so that the empty background does not count."""
    covered = np.any(np.abs(reference - reference[0, 0]) > 2, axis=2)
    rows, cols = np.nonzero(covered.any(axis=1))[0], np.nonzero(covered.any(axis=0))[0]
    if len(rows) == 0:
        return slice(None), slice(None)
    h, w = covered.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + margin + 1)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + margin + 1)))


def ssim(a, b, size=11, sigma=1.5, peak=255.0):
    """Mean SSIM (Wang et al. 2004) of two RGB images, on luminance, gaussian window, valid region."""
    weights = np.array([0.299, 0.587, 0.114])
    x, y = a @ weights, b @ weights
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2.0) / sigma) ** 2)
    g /= g.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = gaussian_filter_valid(x, g), gaussian_filter_valid(y, g)
    sxx = gaussian_filter_valid(x * x, g) - mx * mx
    syy = gaussian_filter_valid(y * y, g) - my * my
    sxy = gaussian_filter_valid(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def save_comparison(reference, shots, path):
    """original | ECNR nearest CR 300 | ZFP fixed accuracy matched to that point, side by side."""
    ecnr = [(abs(math.log(float(p["cr"]) / 300.0)), i) for (codec, i), (p, _) in shots.items() if codec == "ECNR"]
    if not ecnr:
        return
    best = min(ecnr)[1]
    images = [reference, shots[("ECNR", best)][1]]
    if ("ZFP fixed-accuracy", best) in shots:
        images.append(shots[("ZFP fixed-accuracy", best)][1])
    save_png(np.concatenate(images, axis=1), path)


def main():
    outdir = sys.argv[1]
    datasets = read_csv(os.path.join(outdir, "datasets.csv"))
    points = read_csv(os.path.join(outdir, "points.csv"))
    os.makedirs(os.path.join(outdir, "renders"), exist_ok=True)
    rows = []
    for d in datasets:
        nx, ny, nz = int(d["nx"]), int(d["ny"]), int(d["nz"])
        iso, lo, hi = float(d["iso"]), float(d["lo"]), float(d["hi"])
        original = image(load_step(os.path.join(outdir, d["original_file"]), nx, ny, nz), nx, ny, nz)
        surface = surface_points(original, iso)
        renderer = Renderer(lo, hi, iso, (nx, ny, nz))
        reference = renderer.render(original)
        box = object_box(reference)
        save_png(reference, os.path.join(outdir, "renders", d["dataset"] + "-original.png"))
        print("%s: isosurface at %g: %d points; rendering %dx%d" %
              (d["dataset"], iso, len(surface[1]), reference.shape[1], reference.shape[0]), flush=True)
        shots = {}
        for p in points:
            if p["dataset"] != d["dataset"] or not p["step_file"]:
                continue
            decoded = image(load_step(os.path.join(outdir, p["step_file"]), nx, ny, nz), nx, ny, nz)
            other = surface_points(decoded, iso)
            pixels = renderer.render(decoded)
            name = os.path.splitext(os.path.basename(p["step_file"]))[0]
            save_png(pixels, os.path.join(outdir, "renders", name + ".png"))
            index = sum(k[0] == "ECNR" for k in shots) if p["codec"] == "ECNR" else int(p["match"])
            shots[(p["codec"], index)] = (p, pixels)
            row = {"dataset": d["dataset"], "step_file": p["step_file"], "chamfer": chamfer(surface, other),
                   "surface_points": len(other[1]), "ssim": ssim(reference[box], pixels[box])}
            print("  %s %s CR %.1f: Chamfer %.4f voxels, SSIM %.4f" %
                  (p["codec"], p["setting"], float(p["cr"]), row["chamfer"], row["ssim"]), flush=True)
            rows.append(row)
        save_comparison(reference, shots, os.path.join(outdir, "renders", d["dataset"] + "-compare.png"))
    with open(os.path.join(outdir, "metrics.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["dataset", "step_file", "chamfer", "surface_points", "ssim"])
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
