#!/usr/bin/python3
# make_aug_goldens.py: PIL/torchvision reference goldens for rrc's
# augmentations (runtime/rt_augment.c, METHOD.md "Augmentations").
#
#   run with:  /usr/bin/python3 tests/golden/make_aug_goldens.py
#   needs:     Debian's python3-pil (written against Pillow 9.4),
#              python3-torchvision (0.14) and numpy. The `python3` on PATH
#              has neither, hence the absolute interpreter.
#
# It writes tests/golden/aug/*.safetensors: a few small uint8 source images
# and the output of every augmentation at FIXED parameters, computed by
# the very torchvision functions the reference training code calls on PIL
# images (F.resized_crop, F.adjust_*, F.hflip, F.rgb_to_grayscale, F.pad +
# F.crop, F.to_tensor + F.normalize). The random parameter draws are not
# reproduced (rrc draws them from its own generator); only what happens
# to the pixels given the parameters is. See aug/README.md for the
# content of every file.
#
# Deterministic: the sources come from numpy.random.RandomState(seed), no
# torch RNG is used, so re-running gives byte-identical files (with the
# same Pillow/torchvision/numpy).

import json
import os
import sys
from collections import OrderedDict

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "aug")

META = OrderedDict([
    ("pillow", PIL.__version__),
    ("torchvision", torchvision.__version__),
    ("numpy", np.__version__),
    ("generator", "tests/golden/make_aug_goldens.py"),
])


# -------------------------------------------------------------------------
# safetensors writer (Debian has no `safetensors` package)
# -------------------------------------------------------------------------

_DTYPES = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32",
           np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array) in file order.

    8-byte little-endian u64 header length N, N bytes of JSON header padded
    with spaces to a multiple of 8, then the raw little-endian data of
    every tensor, contiguous, in header order."""
    assert sys.byteorder == "little"
    header = OrderedDict()
    header["__metadata__"] = OrderedDict((str(k), str(v)) for k, v in metadata.items())
    blobs = []
    offset = 0
    for name, a in tensors:
        assert name not in header and name != "__metadata__", name
        a = np.ascontiguousarray(a)
        assert a.dtype in _DTYPES, (name, a.dtype)
        data = a.tobytes()
        header[name] = OrderedDict([
            ("dtype", _DTYPES[a.dtype]),
            ("shape", list(a.shape)),
            ("data_offsets", [offset, offset + len(data)]),
        ])
        blobs.append(data)
        offset += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(hj).to_bytes(8, "little"))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# -------------------------------------------------------------------------
# source images (uint8 HWC RGB)
# -------------------------------------------------------------------------

def make_sources():
    rs = np.random.RandomState(20240601)
    src = OrderedDict()
    # uniform noise over the full range: exercises clipping at 0 and 255
    src["rgb_rand"] = rs.randint(0, 256, size=(32, 32, 3)).astype(np.uint8)
    # smooth gradients and a sinusoid: where interpolation errors would show
    y, x = np.mgrid[0:32, 0:32].astype(np.float64)
    r = x * 8.0
    g = y * 8.0
    b = 128.0 + 110.0 * np.sin(x / 5.0) * np.cos(y / 7.0)
    src["rgb_smooth"] = np.clip(np.stack([r, g, b], -1) + 0.5, 0, 255).astype(np.uint8)
    # a gray 28x28 image (Fashion-MNIST-like) as RGB with three equal channels
    y, x = np.mgrid[0:28, 0:28].astype(np.float64)
    gray = 127.5 + 127.5 * np.sin((x + 2 * y) / 6.0) + rs.randint(-20, 21, size=(28, 28))
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    src["gray28"] = np.stack([gray, gray, gray], -1)
    # a non-square image: blocks of random colours over a gradient
    y, x = np.mgrid[0:24, 0:40].astype(np.float64)
    blocks = rs.randint(0, 256, size=(6, 10, 3)).repeat(4, 0).repeat(4, 1).astype(np.float64)
    base = np.stack([x * 6.0, y * 10.0, 255.0 - x * 6.0], -1)
    src["rgb_wide"] = np.clip(0.5 * blocks + 0.5 * base + rs.randint(-8, 9, size=(24, 40, 3)), 0, 255).astype(np.uint8)
    return src


def make_big():
    """A 64x64 image, only for downscaling resized crops."""
    rs = np.random.RandomState(7)
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 3.0)
    g = 127.5 + 127.5 * np.cos((x + y) / 4.0)
    b = rs.randint(0, 256, size=(64, 64)).astype(np.float64)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def pil(a):
    return Image.fromarray(a, "RGB")


def arr(im):
    a = np.array(im, dtype=np.uint8)
    assert a.ndim == 3 and a.shape[2] == 3, a.shape
    return a


def src_tensors(src):
    return [("src." + k, v) for k, v in src.items()]


# -------------------------------------------------------------------------
# the cases
# -------------------------------------------------------------------------

CROP_SIZE = 32

# (top, left, height, width) per source; resized to 32x32
CROP_BOXES = OrderedDict([
    ("rgb_rand", [(0, 0, 32, 32), (4, 4, 24, 24), (0, 0, 32, 20), (10, 3, 7, 13),
                  (5, 9, 27, 23), (1, 2, 3, 4), (31, 31, 1, 1), (0, 5, 17, 27), (2, 0, 30, 32)]),
    ("rgb_smooth", [(0, 0, 32, 32), (3, 7, 20, 11), (6, 1, 26, 30), (0, 0, 9, 32), (12, 12, 5, 5)]),
    ("gray28", [(0, 0, 28, 28), (2, 3, 20, 25), (5, 0, 23, 14), (0, 10, 28, 18)]),
    ("rgb_wide", [(0, 0, 24, 40), (0, 4, 24, 36), (3, 1, 21, 39), (2, 10, 9, 14)]),
    ("rgb_big", [(0, 0, 64, 64), (3, 5, 50, 37), (10, 19, 33, 45), (0, 0, 63, 64), (1, 1, 48, 62), (7, 2, 57, 17)]),
])

BLEND_FACTORS = [0.0, 0.2, 0.5, 0.7, 1.0, 1.3, 1.8, 2.5, 0.37]
HUE_SHIFTS = [-0.5, -0.2, -0.05, -0.001, 0.0, 0.1, 0.2, 0.37, 0.5]

# colour jitter cases: order (0 brightness, 1 contrast, 2 saturation, 3 hue)
# and factors (b, c, s, h); the factors are float32 values as torchvision
# draws them (float(torch.empty(1).uniform_(lo, hi)))
JITTER = [
    ((0, 1, 2, 3), (1.3, 0.7, 1.8, 0.1)),
    ((3, 2, 1, 0), (0.2, 1.8, 0.2, -0.2)),
    ((1, 3, 0, 2), (1.8, 0.2, 1.3, 0.05)),
    ((2, 0, 3, 1), (0.9, 1.45, 0.6, -0.15)),
    ((0, 2, 3, 1), (0.55, 1.2, 1.7, 0.19)),
    ((3, 1, 0, 2), (1.05, 0.35, 0.95, -0.03)),
]

# full views at fixed parameters: box, flip, jitter (None = not applied),
# grayscale; then to_tensor + normalize (CIFAR-10 constants)
CIFAR10_MEAN = (0.491, 0.482, 0.447)
CIFAR10_STD = (0.247, 0.243, 0.262)
PIPE = [
    ("rgb_rand", (4, 4, 24, 24), 1, ((3, 0, 2, 1), (1.2, 0.8, 1.5, 0.12)), 0),
    ("rgb_smooth", (0, 5, 30, 22), 0, ((1, 2, 0, 3), (0.4, 1.6, 0.3, -0.18)), 0),
    ("rgb_smooth", (6, 1, 26, 30), 1, None, 1),
    ("gray28", (2, 3, 20, 25), 1, ((0, 1, 2, 3), (1.7, 0.5, 1.1, 0.2)), 0),
    ("rgb_wide", (3, 1, 21, 39), 0, ((2, 3, 1, 0), (0.3, 1.9, 1.0, 0.07)), 1),
    ("rgb_big", (3, 5, 50, 37), 1, ((0, 3, 1, 2), (1.1, 1.1, 0.25, -0.11)), 0),
]

# random crop with zero padding: pad 4, crop 32x32 at (top, left) of the
# padded image
PAD = 4
PAD_CROPS = [(0, 0), (4, 4), (8, 8), (0, 8), (7, 1), (3, 6)]


def f32(x):
    return float(np.float32(x))


def jitter(im, order, factors):
    b, c, s, h = (f32(v) for v in factors)
    for k in order:
        if k == 0:
            im = F.adjust_brightness(im, b)
        elif k == 1:
            im = F.adjust_contrast(im, c)
        elif k == 2:
            im = F.adjust_saturation(im, s)
        else:
            im = F.adjust_hue(im, h)
    return im


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    src = make_sources()
    allsrc = OrderedDict(src)
    allsrc["rgb_big"] = make_big()
    written = []

    def emit(name, tensors, extra=None):
        meta = OrderedDict(META)
        if extra:
            meta.update(extra)
        path = os.path.join(OUT_DIR, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        written.append(path)

    # --- resized crop ---------------------------------------------------
    t = src_tensors(allsrc)
    for k, boxes in CROP_BOXES.items():
        outs = []
        for (top, left, hh, ww) in boxes:
            a = allsrc[k]
            assert 0 <= top and top + hh <= a.shape[0] and 0 <= left and left + ww <= a.shape[1]
            im = F.resized_crop(pil(a), top, left, hh, ww, [CROP_SIZE, CROP_SIZE],
                                interpolation=F.InterpolationMode.BILINEAR)
            outs.append(arr(im))
        t.append(("boxes." + k, np.array(boxes, dtype=np.int64)))
        t.append(("out." + k, np.stack(outs)))
    emit("resized_crop", t, {"size": str(CROP_SIZE)})

    # --- brightness / contrast / saturation ---------------------------------
    fns = [("brightness", F.adjust_brightness), ("contrast", F.adjust_contrast),
           ("saturation", F.adjust_saturation)]
    for name, fn in fns:
        t = src_tensors(src)
        t.append(("factors", np.array(BLEND_FACTORS, dtype=np.float64)))
        for k, a in src.items():
            t.append(("out." + k, np.stack([arr(fn(pil(a), fac)) for fac in BLEND_FACTORS])))
        emit(name, t)

    # --- hue ----------------------------------------------------------------
    t = src_tensors(src)
    t.append(("factors", np.array(HUE_SHIFTS, dtype=np.float64)))
    # what adjust_hue adds to PIL's 8-bit H (np.uint8 of hue*255: truncated
    # toward zero, a negative value wraps)
    with np.errstate(over="ignore"):
        shifts = [int(np.uint8(h * 255)) for h in HUE_SHIFTS]
    t.append(("shift", np.array(shifts, dtype=np.uint8)))
    # PIL's HSV of each source (the intermediate adjust_hue works on)
    for k, a in src.items():
        t.append(("hsv." + k, np.array(pil(a).convert("HSV"), dtype=np.uint8)))
    for k, a in src.items():
        t.append(("out." + k, np.stack([arr(F.adjust_hue(pil(a), h)) for h in HUE_SHIFTS])))
    emit("hue", t)

    # --- grayscale, hflip -----------------------------------------------------
    t = src_tensors(src)
    for k, a in src.items():
        t.append(("out." + k, arr(F.rgb_to_grayscale(pil(a), num_output_channels=3))))
    emit("grayscale", t)
    t = src_tensors(src)
    for k, a in src.items():
        t.append(("out." + k, arr(F.hflip(pil(a)))))
    emit("hflip", t)

    # --- colour jitter at fixed order and factors ----------------------------
    t = src_tensors(src)
    t.append(("order", np.array([o for o, _ in JITTER], dtype=np.int64)))
    t.append(("factors", np.array([[f32(v) for v in fac] for _, fac in JITTER], dtype=np.float64)))
    for k, a in src.items():
        t.append(("out." + k, np.stack([arr(jitter(pil(a), o, fac)) for o, fac in JITTER])))
    emit("color_jitter", t)

    # --- random crop with zero padding ------------------------------------------
    t = src_tensors(src)
    t.append(("corners", np.array(PAD_CROPS, dtype=np.int64)))
    for k, a in src.items():
        outs = []
        for (top, left) in PAD_CROPS:
            im = F.pad(pil(a), PAD, fill=0)
            outs.append(arr(F.crop(im, top, left, CROP_SIZE, CROP_SIZE)))
        t.append(("out." + k, np.stack(outs)))
    emit("random_crop", t, {"padding": str(PAD), "size": str(CROP_SIZE)})

    # --- normalize (to_tensor + normalize, float32 as torchvision) ------------
    t = src_tensors(src)
    t.append(("mean", np.array(CIFAR10_MEAN, dtype=np.float64)))
    t.append(("std", np.array(CIFAR10_STD, dtype=np.float64)))
    for k, a in src.items():
        x = F.normalize(F.to_tensor(pil(a)), CIFAR10_MEAN, CIFAR10_STD)
        assert x.dtype == torch.float32
        t.append(("out." + k, x.numpy()))
    emit("normalize", t)

    # --- whole views at fixed parameters ------------------------------------------
    t = src_tensors(allsrc)
    cases = []
    outs = []
    for (k, box, flip, jit, gray) in PIPE:
        im = F.resized_crop(pil(allsrc[k]), *box, [CROP_SIZE, CROP_SIZE],
                            interpolation=F.InterpolationMode.BILINEAR)
        if flip:
            im = F.hflip(im)
        if jit is not None:
            im = jitter(im, jit[0], jit[1])
        if gray:
            im = F.rgb_to_grayscale(im, num_output_channels=3)
        outs.append(F.normalize(F.to_tensor(im), CIFAR10_MEAN, CIFAR10_STD).numpy())
        order = jit[0] if jit else (0, 1, 2, 3)
        fac = [f32(v) for v in jit[1]] if jit else [1.0, 1.0, 1.0, 0.0]
        cases.append((list(allsrc).index(k), *box, flip, 1 if jit else 0, *order, gray))
        t.append(("factors.%d" % (len(cases) - 1), np.array(fac, dtype=np.float64)))
    t.append(("mean", np.array(CIFAR10_MEAN, dtype=np.float64)))
    t.append(("std", np.array(CIFAR10_STD, dtype=np.float64)))
    t.append(("cases", np.array(cases, dtype=np.int64)))
    t.append(("out", np.stack(outs)))
    emit("pipeline", t, {"sources": ",".join(allsrc), "size": str(CROP_SIZE),
                         "cases": "src,top,left,height,width,flip,jitter,order0..3,gray"})

    # stale files
    keep = set(os.path.basename(p) for p in written)
    for fn in sorted(os.listdir(OUT_DIR)):
        if fn.endswith(".safetensors") and fn not in keep:
            os.remove(os.path.join(OUT_DIR, fn))
    total = sum(os.path.getsize(p) for p in written)
    print("wrote %d files, %d bytes, to %s" % (len(written), total, OUT_DIR))


if __name__ == "__main__":
    main()
