#!/usr/bin/python3
# make_aug_dist_goldens.py: the DISTRIBUTIONS of torchvision's random
# augmentation parameters, and the per-pixel moments of augmented views, as
# small summaries that tests/runtime/test_aug_dist.c compares rrc against
# (METHOD.md "Augmentations"; runtime/rt_augment.c draws the same
# parameters from its own counter-based generator).
#
#   run with:  /usr/bin/python3 tests/golden/make_aug_dist_goldens.py
#              (or `make goldens`)
#   needs:     Debian's python3-torch (1.13), python3-torchvision (0.14),
#              python3-pil (9.4) and numpy. The `python3` on PATH has none
#              of them, hence the absolute interpreter.
#
# It writes tests/golden/aug_dist/:
#   params.json         histograms (fixed bin edges, counts) of every random
#                       parameter over N_VIEWS views, drawn by torchvision's
#                       own code paths in the order its Compose consumes
#                       torch's generator:
#                         RandomResizedCrop.get_params(img, t.scale, t.ratio),
#                         RandomHorizontalFlip.forward, RandomApply.forward
#                         around a stand-in whose call is
#                         ColorJitter.get_params(t.brightness, ...) (what
#                         ColorJitter.forward draws; the pixels are not made),
#                         RandomGrayscale.forward,
#                       plus RandomResizedCrop.get_params on 10x40 and 40x10
#                       images, where its ten tries often all fail (the
#                       centre-crop fallback, both of its clamped branches).
#   pixels.safetensors  per-pixel mean, variance and fourth central moment
#                       over N_PIX_VIEWS views of each of 8 deterministic
#                       images through the full pipeline (the Compose of
#                       bench/torch_ref.py), the variances over the views
#                       of each view's spatial mean and spatial mean squared
#                       deviation (per channel), and the images' checksums.
# Never raw samples or images: the sources are integer formulas that the C
# test recomputes (see source_image; the checksums pin them).
#
# Deterministic: one thread, torch.manual_seed per part; a re-run gives
# byte-identical files with the same torch/torchvision/Pillow/numpy builds.
# Takes about a minute. tests/golden/README.md (D) describes the contents.

import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_aug_goldens import write_safetensors  # noqa: E402  (the safetensors writer of the aug goldens)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "aug_dist")

N_VIEWS = 200000          # views whose parameters are histogrammed
N_THIN = 200000           # RandomResizedCrop draws on the 10x40 and 40x10 images
N_PIX_VIEWS = 2000        # views per image for the per-pixel moments
SEED_PARAMS, SEED_WIDE, SEED_TALL, SEED_PIX = 17, 18, 20, 19

# METHOD.md's pipeline, as bench/torch_ref.py builds it
SIZE = 32
FASHION = ((0.2190,) * 3, (0.3318,) * 3)
CIFAR10 = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))


def pipeline_parts():
    return (T.RandomResizedCrop(SIZE, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
            T.ColorJitter(0.8, 0.8, 0.8, 0.2), 0.8, T.RandomGrayscale(p=0.2))


def full_pipeline(mean, std):
    rrc, flip, cj, pj, gray = pipeline_parts()
    return T.Compose([rrc, flip, T.RandomApply([cj], p=pj), gray, T.ToTensor(), T.Normalize(mean, std)])


# -------------------------------------------------------------------------
# histograms: counts[0] = below edges[0], counts[1..nb] = [edges[i-1],
# edges[i]), counts[nb+1] = at or above edges[nb]
# -------------------------------------------------------------------------

def histogram(values, edges):
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    assert np.all(np.diff(e) > 0)
    idx = np.searchsorted(e, v, side="right")     # 0 below, len(e) at/above the last
    return np.bincount(idx, minlength=len(e) + 1).astype(np.int64)


def uniform_edges(lo, hi, nb):
    return [lo + (hi - lo) * k / nb for k in range(nb + 1)]


def int_edges(lo, hi):
    """one bin per integer lo..hi: edges lo-0.5 .. hi+0.5"""
    return [k - 0.5 for k in range(lo, hi + 2)]


def perm_rank(p):
    """lexicographic rank of a permutation of 0..3 (0 = 0123, 23 = 3210)"""
    p = list(p)
    r = 0
    for i in range(4):
        smaller = sum(1 for q in p[i + 1:] if q < p[i])
        r = r * (4 - i) + smaller
    return r


def entry(desc, values, edges, n):
    c = histogram(values, edges)
    assert int(c.sum()) == n, (desc, int(c.sum()), n)
    return OrderedDict([("desc", desc), ("n", n), ("edges", [float(x) for x in edges]),
                        ("counts", [int(x) for x in c])])


# edges shared by both crop cases; the C test reads them from the file
LOGR_EDGES = uniform_edges(-0.465, 0.465, 31)   # log(w/h); 0 is a bin's middle


def crop_hists(prefix, boxes, H, W, fallbacks):
    b = np.asarray(boxes, dtype=np.int64)
    top, left, h, w = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    n = len(b)
    out = OrderedDict()
    out[prefix + ".area"] = entry("crop area fraction h*w/(H*W)", h * w / float(H * W),
                                  uniform_edges(0.0, 1.0 + 1.0 / 32, 33), n)
    out[prefix + ".log_ratio"] = entry("log aspect ratio log(w/h)", [math.log(x) for x in (w / h)],
                                       LOGR_EDGES, n)
    out[prefix + ".height"] = entry("crop height h", h, int_edges(1, H), n)
    out[prefix + ".width"] = entry("crop width w", w, int_edges(1, W), n)
    out[prefix + ".top"] = entry("crop top i", top, int_edges(0, H - 1), n)
    out[prefix + ".left"] = entry("crop left j", left, int_edges(0, W - 1), n)
    out[prefix + ".hw"] = entry("joint (h, w) cell (h-1)*W + (w-1)", (h - 1) * W + (w - 1),
                                int_edges(0, H * W - 1), n)
    out[prefix + ".fallback"] = entry("centre-crop fallback (0/1)", fallbacks, int_edges(0, 1), n)
    return out


class FallbackProbe:
    """get_params returns no flag for its centre-crop fallback, and the
    fallback box can also be the result of a try (the whole 32x32 image,
    say). An accepted try calls torch.randint twice for its corner, the
    fallback never: the probe counts those calls (torchvision looks
    torch.randint up at call time), so `fallback` is exact."""

    def __enter__(self):
        self.real, self.calls = torch.randint, 0

        def counting(*a, **k):
            self.calls += 1
            return self.real(*a, **k)
        torch.randint = counting
        return self

    def __exit__(self, *exc):
        torch.randint = self.real

    def draw(self, rrc, img):
        c0 = self.calls
        box = rrc.get_params(img, rrc.scale, rrc.ratio)
        assert self.calls - c0 in (0, 2)
        return box, int(self.calls == c0)


# -------------------------------------------------------------------------
# part 1: the parameters of N_VIEWS views, in the Compose's draw order
# -------------------------------------------------------------------------

def draw_params():
    torch.manual_seed(SEED_PARAMS)
    rrc, flip, cj, pj, gray = pipeline_parts()
    img = Image.new("RGB", (SIZE, SIZE))        # get_params reads only its size
    tiny = Image.new("RGB", (1, 1))             # flip / grayscale return it unchanged when not applied
    drawn = []

    def jitter_stand_in(im):
        # what ColorJitter.forward draws, without making pixels
        fn_idx, b, c, s, h = cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
        drawn.append(([int(x) for x in fn_idx], b, c, s, h))
        return im

    apply_jitter = T.RandomApply([jitter_stand_in], p=pj)
    boxes, fb, flips, jit, grays, orders, firsts, factors = [], [], [], [], [], [], [], []
    with FallbackProbe() as probe:
        for v in range(N_VIEWS):
            box, f = probe.draw(rrc, img)
            boxes.append(box)
            fb.append(f)
            flips.append(int(flip(tiny) is not tiny))
            n0 = len(drawn)
            apply_jitter(tiny)
            applied = len(drawn) > n0
            jit.append(int(applied))
            if applied:
                o, b, c, s, h = drawn[-1]
                orders.append(perm_rank(o))
                firsts.append(o[0])
                factors.append((b, c, s, h))
            grays.append(int(gray(tiny) is not tiny))
    out = crop_hists("crop32", boxes, SIZE, SIZE, fb)
    n = N_VIEWS
    out["flip"] = entry("horizontal flip applied (0/1)", flips, int_edges(0, 1), n)
    out["jitter_apply"] = entry("RandomApply(ColorJitter) applied (0/1)", jit, int_edges(0, 1), n)
    out["gray"] = entry("grayscale applied (0/1)", grays, int_edges(0, 1), n)
    out["apply_joint"] = entry("flip + 2*jitter + 4*gray", np.array(flips) + 2 * np.array(jit) + 4 * np.array(grays),
                               int_edges(0, 7), n)
    nj = len(orders)
    f = np.asarray(factors, dtype=np.float64)
    out["jitter.order"] = entry("lexicographic rank of the order (0 = b,c,s,h; 23 = h,s,c,b), applied views",
                                orders, int_edges(0, 23), nj)
    out["jitter.first"] = entry("first adjustment applied (0 b, 1 c, 2 s, 3 h), applied views",
                                firsts, int_edges(0, 3), nj)
    for k, name in enumerate(["brightness", "contrast", "saturation"]):
        out["jitter." + name] = entry(name + " factor, applied views", f[:, k], uniform_edges(0.2, 1.8, 32), nj)
    out["jitter.hue"] = entry("hue factor, applied views", f[:, 3], uniform_edges(-0.2, 0.2, 32), nj)
    out["jitter.hue_shift"] = entry("np.uint8(hue*255) as a signed shift, applied views",
                                    [int(np.trunc(h * 255)) for h in f[:, 3]], int_edges(-51, 51), nj)
    return out


def draw_thin(H, W, seed):
    """RandomResizedCrop on a thin image (10x40, 40x10): a try fits only
    when its short side does, so all ten fail for about 9% of the draws and
    the centre-crop fallback (clamped to the ratio range: 10x13 / 13x10)
    is taken; one case per branch of the fallback."""
    torch.manual_seed(seed)
    rrc = pipeline_parts()[0]
    img = Image.new("RGB", (W, H))
    with FallbackProbe() as probe:
        drawn = [probe.draw(rrc, img) for _ in range(N_THIN)]
    return crop_hists("crop%dx%d" % (H, W), [b for b, _ in drawn], H, W, [f for _, f in drawn])


# -------------------------------------------------------------------------
# part 2: per-pixel moments of views of 8 deterministic images
# -------------------------------------------------------------------------

def source_image(k):
    """32x32x3 uint8, integer arithmetic only (test_aug_dist.c has the same
    formulas). k = 0..3: Fashion-MNIST-like, a gray 28x28 garment-like
    shape with texture, zero-padded by 2, gray replicated to RGB; k = 4..7:
    colour images (ramps, xor texture, a near-gray corner, a
    checkerboard)."""
    a = np.zeros((32, 32, 3), dtype=np.uint8)
    if k < 4:
        for y in range(28):
            for x in range(28):
                X, Y = 2 * x - 27, 2 * y - 27
                if k == 0:
                    inside = abs(X) <= 20 and abs(Y) <= 24 or (abs(Y + 18) <= 6 and abs(X) <= 26)
                elif k == 1:
                    inside = X * X + 2 * Y * Y <= 700
                elif k == 2:
                    inside = (abs(X - 9) <= 6 or abs(X + 9) <= 6 or Y <= -17) and abs(Y) <= 25 and abs(X) <= 16
                else:
                    inside = abs(X) + abs(Y) <= 30
                if inside:
                    v = 40 + (x * 7 + y * 11 + k * 40) % 160 + ((x * y + k) % 5) * 10
                    a[y + 2, x + 2, :] = v
    else:
        for y in range(32):
            for x in range(32):
                r = (x * 8 + k * 37) & 255
                g = (y * 8 + x * 3 + k * 53) & 255
                b = ((x ^ y) * 8 + k * 71) & 255
                if k == 6 and x + y < 20:
                    r = g = b = (r + g + b) // 3
                if k == 7:
                    if ((x // 4) + (y // 4)) & 1:
                        r, g, b = 230, 40 + (x * y * 7) % 23, 60
                    else:
                        r, g, b = 20, 200, 240 - (x * y * 7) % 23
                a[y, x] = (r, g, b)
    return a


def fnv1a32(data):
    h = 2166136261
    for byte in data:
        h ^= byte
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def pixel_moments():
    torch.manual_seed(SEED_PIX)
    means, varis, m4s, sums, vm_var, vq_var = [], [], [], [], [], []
    for k in range(8):
        src = source_image(k)
        sums.append(fnv1a32(src.tobytes()))
        mean, std = FASHION if k < 4 else CIFAR10
        aug = full_pipeline(mean, std)
        im = Image.fromarray(src, "RGB")
        views = torch.stack([aug(im) for _ in range(N_PIX_VIEWS)]).double().numpy()   # [n, 3, 32, 32]
        m = views.mean(0)
        d = views - m
        means.append(m)
        varis.append((d * d).sum(0) / (N_PIX_VIEWS - 1))
        m4s.append((d ** 4).mean(0))
        # per view and channel: its spatial mean, and its spatial mean of
        # squared deviations from the per-pixel means; their variances over
        # the views give the standard errors of the pixel-averaged mean and
        # variance, correlations between pixels included
        vm_var.append(views.mean((2, 3)).var(0, ddof=1))
        vq_var.append((d * d).mean((2, 3)).var(0, ddof=1))
    return (np.stack(means).astype(np.float32), np.stack(varis).astype(np.float32),
            np.stack(m4s).astype(np.float32), np.array(sums, dtype=np.int64),
            np.stack(vm_var).astype(np.float32), np.stack(vq_var).astype(np.float32))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    meta = OrderedDict([
        ("generator", "tests/golden/make_aug_dist_goldens.py"),
        ("torch", torch.__version__), ("torchvision", torchvision.__version__),
        ("pillow", PIL.__version__), ("numpy", np.__version__),
        ("n_views", N_VIEWS), ("n_thin", N_THIN), ("n_pix_views", N_PIX_VIEWS),
        ("seeds", [SEED_PARAMS, SEED_WIDE, SEED_TALL, SEED_PIX]),
    ])
    hists = OrderedDict()
    hists.update(draw_params())
    hists.update(draw_thin(10, 40, SEED_WIDE))
    hists.update(draw_thin(40, 10, SEED_TALL))
    doc = OrderedDict([("meta", meta), ("hists", hists)])
    path = os.path.join(OUT_DIR, "params.json")
    with open(path + ".tmp", "w") as f:
        # one histogram per line: small diffs when it is regenerated
        f.write("{\"meta\": " + json.dumps(meta) + ",\n \"hists\": {\n")
        items = list(hists.items())
        for i, (k, v) in enumerate(items):
            f.write("  " + json.dumps(k) + ": " + json.dumps(v) + ("," if i + 1 < len(items) else "") + "\n")
        f.write(" }\n}\n")
    os.replace(path + ".tmp", path)
    assert json.load(open(path)) == json.loads(json.dumps(doc))

    mean, var, m4, sums, vm_var, vq_var = pixel_moments()
    pmeta = OrderedDict((k, v) for k, v in meta.items() if k not in ("n_views", "n_thin"))
    pmeta["normalize"] = "images 0-3: mean 0.2190 std 0.3318 (fashion-mnist); 4-7: cifar10"
    write_safetensors(os.path.join(OUT_DIR, "pixels.safetensors"),
                      [("mean", mean), ("var", var), ("m4", m4), ("view_mean_var", vm_var),
                       ("view_sq_var", vq_var), ("fnv1a", sums)], pmeta)
    for k, v in hists.items():
        print(f"{k:24s} n={v['n']} bins={len(v['counts'])}")
    print("pixels: mean/var/m4", mean.shape, "checksums", [hex(int(s)) for s in sums])


if __name__ == "__main__":
    main()
