"""Batch conversion with the ECNR plugin (pvpython or pvbatch), with the writer's options.

  pvpython ecnr_convert.py series.pvd out.ecnr [--preset fast] [--epochs 20,20,25] ...   # compress
  pvpython ecnr_convert.py 'step_*.vti' out.ecnr                                          # a .vti series (glob)
  pvpython ecnr_convert.py volume.raw out.ecnr --raw-dims 64,64,64,10                     # raw float32, x fastest
  pvpython ecnr_convert.py in.ecnr out.pvd [--scale 1] [--arrays V]                       # decompress (.vti + .pvd)

Any file ParaView opens works as input. The plugin is found through PV_PLUGIN_PATH or --plugin <ECNR.so>."""
import argparse
import glob
import os
import sys
import tempfile

import numpy as np
from paraview.simple import CreateWriter, Delete, LoadPlugin, OpenDataFile, PVDReader
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkIOXML import vtkXMLImageDataWriter


def write_pvd(path, entries):
    with open(path, "w") as f:
        f.write('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n  <Collection>\n')
        for t, name in entries:
            f.write('    <DataSet timestep="%r" file="%s"/>\n' % (t, name))
        f.write("  </Collection>\n</VTKFile>\n")


def raw_to_pvd(raw, dims, folder, name):
    """Raw little-endian float32, x fastest then y, z, t -> a .vti series + .pvd in folder."""
    nx, ny, nz, nt = dims
    values = np.fromfile(raw, dtype="<f4")
    if values.size != nx * ny * nz * nt:
        sys.exit("%s holds %d floats, --raw-dims asks for %d" % (raw, values.size, nx * ny * nz * nt))
    entries = []
    for t in range(nt):
        img = vtkImageData()
        img.SetDimensions(nx, ny, nz)
        a = numpy_to_vtk(values[t * nx * ny * nz:(t + 1) * nx * ny * nz], deep=1)
        a.SetName(name)
        img.GetPointData().SetScalars(a)
        w = vtkXMLImageDataWriter()
        w.SetFileName(os.path.join(folder, "step_%d.vti" % t))
        w.SetInputData(img)
        w.Write()
        entries.append((float(t), "step_%d.vti" % t))
    pvd = os.path.join(folder, "raw.pvd")
    write_pvd(pvd, entries)
    return pvd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output", help=".ecnr to compress, .pvd (or .vti: one file per step) to decompress")
    p.add_argument("--plugin", help="path of ECNR.so (default: PV_PLUGIN_PATH)")
    p.add_argument("--arrays", help="comma-separated point arrays (default: all numeric)")
    g = p.add_argument_group("compression (the writer's properties)")
    g.add_argument("--preset", choices=["fast", "default", "quality"], default="default")
    g.add_argument("--scales", type=int)
    g.add_argument("--block", help="X,Y,Z block size")
    g.add_argument("--target-ratio", type=float)
    g.add_argument("--blocks-per-mlp", help="a,b,c coarsest first")
    g.add_argument("--epochs", help="a,b,c coarsest first")
    g.add_argument("--latent", type=int)
    g.add_argument("--hidden", type=int)
    g.add_argument("--threshold", type=float)
    g.add_argument("--device", choices=["cpu", "cuda"])
    g.add_argument("--seed", type=int)
    g.add_argument("--threads", type=int)
    g.add_argument("--raw-dims", help="X,Y,Z,T of a raw float32 input")
    g.add_argument("--raw-name", default="scalars", help="array name for a raw input")
    g = p.add_argument_group("decompression")
    g.add_argument("--scale", type=int, default=0, help="leave out this many finest scales (coarse preview)")
    a = p.parse_args(argv)
    if a.plugin:
        LoadPlugin(a.plugin, remote=False, ns=globals())
    arrays = a.arrays.split(",") if a.arrays else None

    if a.input.endswith(".ecnr"):
        reader = OpenDataFile(a.input)
        reader.Scale = a.scale
        if arrays:
            reader.PointArrays = arrays
        base, ext = os.path.splitext(a.output)
        folder = os.path.dirname(os.path.abspath(a.output))
        entries = []
        for i, t in enumerate(reader.TimestepValues or [0.0]):
            name = "%s_%d.vti" % (os.path.basename(base), i)
            w = CreateWriter(os.path.join(folder, name), reader)
            w.UpdatePipeline(t)
            Delete(w)
            entries.append((t, name))
        if ext == ".pvd":
            write_pvd(a.output, entries)
        print("decoded %d time step(s) into %s" % (len(entries), a.output))
        return 0

    tmp = None
    if a.raw_dims:
        tmp = tempfile.TemporaryDirectory()
        source = PVDReader(FileName=raw_to_pvd(a.input, [int(x) for x in a.raw_dims.split(",")], tmp.name,
                                               a.raw_name))
    elif any(c in a.input for c in "*?["):
        source = OpenDataFile(sorted(glob.glob(a.input)))
    else:
        source = OpenDataFile(a.input)
    if source is None:
        sys.exit("ParaView cannot open %s" % a.input)
    props = dict(Preset=a.preset)
    for key, value in (("Scales", a.scales), ("TargetRatio", a.target_ratio), ("BlocksPerMLP", a.blocks_per_mlp),
                       ("Epochs", a.epochs), ("LatentSize", a.latent), ("HiddenWidth", a.hidden),
                       ("Threshold", a.threshold), ("Device", a.device), ("Seed", a.seed), ("Threads", a.threads)):
        if value is not None:
            props[key] = value
    if a.block:
        props["BlockSize"] = [int(x) for x in a.block.split(",")]
    writer = CreateWriter(a.output, source, **props)
    if arrays:
        writer.PointArrays = arrays
    if os.path.exists(a.output):
        os.remove(a.output)
    writer.UpdatePipeline()
    if not os.path.exists(a.output):
        sys.exit("writing %s failed (see the messages above)" % a.output)
    writer.UpdatePropertyInformation()
    print("wrote %s: ratio %.1f:1, PSNR %.2f dB" % (a.output, writer.GetPropertyValue("AchievedRatio"),
                                                   writer.GetPropertyValue("AchievedPSNR")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
