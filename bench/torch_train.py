#!/usr/bin/python3
"""torch_train.py: the PyTorch reference trainer of rrc's Fashion-MNIST
figures: self-supervised relational reasoning, its linear evaluation and the
supervised upper bound, exactly as /work/shared/METHOD.md describes them
and as rrc runs them (so both sides of every accuracy can be rerun).

Runs on Debian's python3-torch 1.13 / python3-torchvision 0.14 / Pillow 9.4,
CPU, float32:  /usr/bin/python3 bench/torch_train.py --help

What it implements
------------------
Data (as runtime/rt_data_idx.c loads it). Fashion-MNIST from Debian's
dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*-ubyte.gz, IDX,
read with gzip + numpy, magic and sizes checked): every 28x28 image is
zero-padded by 2 pixels on each side to 32x32, its gray value replicated to
3 channels, and handed to the transforms as a PIL RGB image. Normalisation:
mean 0.2190, std 0.3318 for every channel (the padded train split's own
statistics, population std; the unpadded 0.2860/0.3530 scaled to the area).

--mode ssl (METHOD.md "One training step", specs/conv4.lua's settings):
  * backbone Conv-4 (or --model resnet8/32/56), the classes of
    tests/golden/make_goldens.py; init as METHOD.md: conv weights
    N(0, sqrt(2/(k*k*out))), BatchNorm weight 1, bias 0, running 0/1,
    Linear layers PyTorch's default (make_goldens.init_module is NOT used:
    it perturbs BatchNorm for the goldens);
  * relation head Linear(2*64 -> 256) -> BatchNorm1d -> LeakyReLU(0.01) ->
    Linear(256 -> 1), aggregation cat (--aggregation for the others);
  * K views per image (default 4), each an independent draw of
    RandomResizedCrop(32, scale (0.08, 1), ratio (3/4, 4/3), PIL bilinear),
    RandomHorizontalFlip(0.5), RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)],
    p=0.8), RandomGrayscale(0.2), ToTensor, Normalize, made per image in
    the dataset's __getitem__ (as the official MultiCIFAR10 does) and
    stacked augmentation-major (row k*B + i = view k of image i);
  * a DataLoader epoch: batch B (default 64) in the order of
    torch.randperm(n, generator) with a torch.Generator seeded by --seed
    (drawn anew every epoch from the same generator), the last partial batch
    kept (60000 = 937 * 64 + 32) unless --drop-last;
  * pairs by METHOD.md's roll-shift-reset rule (make_goldens.make_pairs),
    sigmoid focal loss gamma 2 alpha 0.5 with the modulating factor not
    detached (or --loss bce), mean over the B*K*(K-1) pairs;
  * one torch.optim.Adam over backbone and head, lr 1e-3, betas
    (0.9, 0.999), eps 1e-8, no weight decay, no schedule, kept across epochs;
    BatchNorm running statistics with PyTorch's momentum 0.1;
  * per step one row of metrics.csv with rrc's columns (runtime/rt_train.c):
    epoch,step,loss,pair_acc,pos_acc,neg_acc,images_per_s,seconds, where
    pair_acc is mean(round(sigmoid(z)) == y) (torch.round: round(0.5) = 0),
    pos_acc / neg_acc the same over the pairs with target 1 / 0,
    images_per_s = K*B / (seconds of the step, waiting for the loader
    included) and seconds since the start of training;
  * at the end DIR/backbone.safetensors with the backbone's state dict under
    bare names (layer1.conv.weight, layer1.bn.running_mean, ...,
    num_batches_tracked as I64), which
    `rrc lineval conv4 --data fashion-mnist --checkpoint FILE` reads, and
    DIR/relation.safetensors with the head's; with --checkpoint-every E also
    DIR/epoch_E.safetensors (the backbone, the same names) every E epochs.

--mode lineval (METHOD.md "Linear evaluation"): the backbone of --checkpoint
(bare names, or an rrc checkpoint's backbone.* ones) or a random one
(--random-init: METHOD.md init seeded by --seed, running statistics 0 and
1), frozen in eval mode; features of the train and test splits computed
once without gradient (normalisation only, bit-identical to ToTensor +
Normalize); one Linear(Fdim -> 10) with PyTorch's default init, Adam 1e-3,
batch 128 reshuffled every epoch (torch.randperm, generator seeded by --seed),
the last partial batch kept, cross-entropy (mean), --lineval-epochs
(default 100); test top-1 after the last epoch. Prints one JSON line.

--mode supervised (METHOD.md's upper bound): the backbone with a
Linear(Fdim -> 10) classifier, trained together from METHOD.md's init with
SGD lr 0.1 momentum 0.9 (no weight decay, no dampening, not Nesterov), lr x0.1
at the start of epochs int(0.5*E) and int(0.75*E), batch 128 (shuffled as
above, last partial batch kept), RandomCrop(32, padding=4) +
RandomHorizontalFlip + ToTensor + Normalize, cross-entropy; then the
classifier's test top-1 with the backbone in eval mode. metrics.csv has rrc's
supervised columns epoch,step,loss,train_acc,lr,images_per_s,seconds.
Prints one JSON line. (rrc's own supervised schedule decays at epochs
floor(0.5*E + 0.5) and floor(0.75*E + 0.5): the same as here when 4 divides
E, e.g. E = 100; for E = 10 rrc decays at 5 and 8, the official code and this
script at 5 and 7.)

Threads: --threads N sets torch.set_num_threads(N) and, unless already set,
OPENBLAS_NUM_THREADS=N before torch loads: Debian's torch does its matrix
products in the system OpenBLAS, whose own thread otherwise spins on the
second core (measured: 2.6 s of system time per 2.6 s of conv4 steps) and
slows a DataLoader worker. DataLoader workers run one thread each.

Seeds: --seed S calls torch.manual_seed(S), numpy.random.seed(S) and
random.seed(S) first; the models are then built in the order backbone, head
(or classifier). Views come from torch's global generator: with --workers 0
in this process, with --workers N in the DataLoader's workers, which the
DataLoader seeds from the --seed generator, so a run is reproducible for a
given (--seed, --workers) but --workers changes the views. The batch order
does not depend on --workers.

Differences from the official code (mpatacchiola/self-supervised-relational-
reasoning: train_unsupervised.py, methods/relationnet.py, methods/standard.py,
train_linear_evaluation.py, datamanager.py)
  * the data: the official code has no Fashion-MNIST; the 32x32 padding, the
    3 channels and the 0.2190/0.3318 constants are rrc's protocol (the
    CIFAR-10 pipeline otherwise unchanged);
  * pos_acc / neg_acc are computed by target (METHOD.md step 7); the
    official code takes the first and the second half of the pairs, which
    are interleaved pos/neg blocks, so its acc+ / acc- mix both kinds. The
    loss, pair_acc and the training itself are unaffected;
  * linear evaluation computes the frozen eval-mode features once instead of
    running the backbone in every epoch (the same values: no augmentation,
    no BatchNorm update in eval mode);
  * logging per step (the official logs per epoch), checkpoints as
    safetensors instead of torch.save, threads and workers set by flags
    (official: 8 workers); pin_memory, CUDA and cudnn flags do not apply on
    the CPU;
  * the official Adam has two parameter groups (backbone, head) with the
    same settings, and the official supervised SGD two groups (backbone,
    classifier) with the same settings: one group here, the same update.
  Otherwise none.
"""
import argparse
import gzip
import json
import math
import os
import random
import sys
import time


def _threads_arg(argv):
    """--threads N from the command line, read before numpy and torch load."""
    n = "1"
    for i, x in enumerate(argv):
        if x == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif x.startswith("--threads="):
            n = x.split("=", 1)[1]
    return n if n.isdigit() and int(n) >= 1 else "1"


# Debian's torch does its matrix products in the system OpenBLAS, which
# torch.set_num_threads does not bound: by default it starts a thread per
# core that spins (sched_yield) between calls, taking the second core from
# the DataLoader worker. Its thread count follows --threads (before import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg(sys.argv[1:]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import make_goldens as mg  # noqa: E402  (the backbones, relation head and pairs of METHOD.md)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SIDE, PAD = 28, 2
OUT = SIDE + 2 * PAD                     # 32
MEAN = (0.2190, 0.2190, 0.2190)          # rt_data_idx.c: the padded train split's
STD = (0.3318, 0.3318, 0.3318)
CLASSES = 10
# specs/conv4.lua
SPEC_K, SPEC_B, SPEC_EPOCHS, SPEC_SEED = 4, 64, 100, 1
LINEVAL_BATCH, LINEVAL_EPOCHS, LINEVAL_LR = 128, 100, 1e-3
SUP_BATCH, SUP_LR, SUP_MOMENTUM = 128, 0.1, 0.9
PROG = "torch_train"


def die(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


def say(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data

def read_idx(path, magic, ndim):
    """An IDX file (gzipped if it ends in .gz): checks magic and length."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die("%s: %s" % (path, e))
    hdr = 4 + 4 * ndim
    if len(data) < hdr:
        die("%s: truncated IDX header" % path)
    m = int.from_bytes(data[0:4], "big")
    if m != magic:
        die("%s: not an IDX file of %d dims (magic 0x%08x, want 0x%08x)" % (path, ndim, m, magic))
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - hdr != int(np.prod(dims)):
        die("%s: %d bytes of data, the header says %d" % (path, len(data) - hdr, int(np.prod(dims))))
    return np.frombuffer(data, dtype=np.uint8, offset=hdr).reshape(dims)


def find(folder, stem, ndim):
    for name in ("%s-idx%d-ubyte.gz" % (stem, ndim), "%s-idx%d-ubyte" % (stem, ndim), "%s.idx%d-ubyte" % (stem, ndim)):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    die("%s: no %s-idx%d-ubyte.gz (install Debian's dataset-fashion-mnist)" % (folder, stem, ndim))


def load_split(folder, split):
    """(pixels uint8 [N, 32, 32, 3] HWC, labels int64 [N]) of 'train' or 'test'."""
    pre = "train" if split == "train" else "t10k"
    images = read_idx(find(folder, pre + "-images", 3), 0x00000803, 3)
    labels = read_idx(find(folder, pre + "-labels", 1), 0x00000801, 1)
    if images.shape[1:] != (SIDE, SIDE):
        die("%s images are %dx%d, not 28x28" % (split, images.shape[1], images.shape[2]))
    if len(images) != len(labels):
        die("%s: %d images but %d labels" % (split, len(images), len(labels)))
    if labels.max() >= CLASSES:
        die("%s: a label is out of range" % split)
    pixels = np.zeros((len(images), OUT, OUT, 3), dtype=np.uint8)
    pixels[:, PAD:PAD + SIDE, PAD:PAD + SIDE, :] = images[:, :, :, None]
    return pixels, labels.astype(np.int64)


def normalize_tensor(pixels):
    """uint8 [N, 32, 32, 3] -> float32 [N, 3, 32, 32]: the operations of
    ToTensor (to float, / 255) and Normalize (- mean, / std), batched."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()
    x = x.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(STD, dtype=torch.float32).view(-1, 1, 1)
    return x.sub_(mean).div_(std)


def check_normalize(pixels):
    """The batched normalisation equals torchvision's, bit for bit."""
    tv = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    ref = torch.stack([tv(Image.fromarray(pixels[i])) for i in range(8)])
    assert torch.equal(ref, normalize_tensor(pixels[:8])), "batched normalisation differs from torchvision's"


def ssl_transform():
    """METHOD.md "Augmentations" (the official relationnet/simclr transform)."""
    return T.Compose([
        T.RandomResizedCrop(OUT, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                            interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


def supervised_transform():
    """METHOD.md's upper bound (the official "standard" transform)."""
    return T.Compose([T.RandomCrop(OUT, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])


class MultiViews(torch.utils.data.Dataset):
    """K independent draws of the transform per image (the official
    MultiCIFAR10.__getitem__): a list of K tensors [3, 32, 32]."""

    def __init__(self, pixels, transform, K):
        self.pixels, self.transform, self.K = pixels, transform, K

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        pic = Image.fromarray(self.pixels[i])     # RGB, gray replicated
        return [self.transform(pic.copy()) for _ in range(self.K)]


class Labeled(torch.utils.data.Dataset):
    def __init__(self, pixels, labels, transform):
        self.pixels, self.labels, self.transform = pixels, labels, transform

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.pixels[i])), int(self.labels[i])


def loader(ds, batch, seed, workers, drop_last):
    g = torch.Generator()
    g.manual_seed(seed)
    # shuffle=True with a generator: RandomSampler yields torch.randperm(n, generator=g) each epoch
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, generator=g, num_workers=workers,
                                       drop_last=drop_last)


def check_last_batch(n, batch, drop_last):
    if not drop_last and n % batch == 1:
        die("the last batch would hold 1 image (BatchNorm needs 2); use --drop-last or another batch size")


# ---------------------------------------------------------------- models

def build_backbone(model):
    """METHOD.md init: conv N(0, sqrt(2/(k*k*out))) in module order, BN 1/0
    with running 0/1 (PyTorch's defaults), as the official backbones do."""
    try:
        backbone = mg.make_backbone(model)
    except ValueError:
        die("unknown --model %s" % model)
    for mod in backbone.modules():
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            with torch.no_grad():
                mod.weight.normal_(0.0, math.sqrt(2.0 / (k * mod.out_channels)))
        elif isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.fill_(1.0)
                mod.bias.zero_()
    return backbone


def focal_loss(z, y, gamma=mg.GAMMA, alpha=mg.ALPHA):
    """METHOD.md step 5 (the official FocalLoss): mean of
    a_t * (1 - p_t)^gamma * BCE, the modulating factor not detached."""
    p = torch.sigmoid(z)
    p_t = y * p + (1 - y) * (1 - p)
    a_t = y * alpha + (1 - y) * (1 - alpha)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    return (a_t * (1 - p_t) ** gamma * bce).mean()


def pair_metrics(z, y):
    """METHOD.md step 7: round(sigmoid(z)) == y (torch.round: round(0.5) = 0),
    over all pairs and by target."""
    ok = (torch.round(torch.sigmoid(z.detach())) == y).to(torch.float64)
    pos, neg = y == 1, y == 0
    return ok.mean().item(), ok[pos].mean().item(), ok[neg].mean().item()


# ---------------------------------------------------------------- safetensors

def save_state(path, module, metadata):
    tensors = []
    for k, v in module.state_dict().items():
        v = v.detach().clone()
        if k.endswith("num_batches_tracked"):
            v = v.to(torch.int64).reshape([])
        tensors.append((k, v))
    mg.write_safetensors(path, tensors, metadata)


_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die("%s: %s" % (path, e))
    if len(data) < 8:
        die("%s: not a safetensors file" % path)
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        die("%s: not a safetensors file (bad header)" % path)
    base, out = 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            die("%s: tensor %s has dtype %s, not supported here" % (path, name, info["dtype"]))
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def load_backbone(backbone, path):
    """Bare names (layer1.conv.weight) or an rrc checkpoint's backbone.*;
    num_batches_tracked optional."""
    tensors = read_safetensors(path)
    prefix = "backbone." if any(k.startswith("backbone.") for k in tensors) else ""
    state = {}
    for k, v in backbone.state_dict().items():
        src = tensors.get(prefix + k)
        if src is None:
            if k.endswith("num_batches_tracked"):
                state[k] = v
                continue
            die("%s: missing tensor %s" % (path, prefix + k))
        if tuple(src.shape) != tuple(v.shape) and not (v.dim() == 0 and src.numel() == 1):
            die("%s: %s has shape %s, this backbone's is %s" % (path, prefix + k, list(src.shape), list(v.shape)))
        state[k] = src.reshape(v.shape).to(v.dtype)
    backbone.load_state_dict(state)


# ---------------------------------------------------------------- modes

def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def steps_of(n, batch, drop_last):
    return n // batch if drop_last else (n + batch - 1) // batch


def run_ssl(a):
    if a.K < 2:
        die("--K must be at least 2")
    if a.B < 2:
        die("--B must be at least 2")
    pixels, _ = load_split(a.data_dir, "train")
    n = len(pixels)
    check_last_batch(n, a.B, a.drop_last)
    seed_all(a.seed)
    backbone = build_backbone(a.model)
    head = mg.RelationHead(mg.agg_dim(backbone.fdim, a.aggregation))
    backbone.train()
    head.train()
    opt = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=1e-3, betas=(0.9, 0.999),
                           eps=1e-8, weight_decay=0)
    loss_fn = focal_loss if a.loss == "focal" else (lambda z, y: F.binary_cross_entropy_with_logits(z, y))
    dl = loader(MultiViews(pixels, ssl_transform(), a.K), a.B, a.seed, a.workers, a.drop_last)
    spe = steps_of(n, a.B, a.drop_last)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    log_path = a.log or (os.path.join(a.out, "metrics.csv") if a.out else None)
    log = open(log_path, "w") if log_path else None
    if log:
        log.write("epoch,step,loss,pair_acc,pos_acc,neg_acc,images_per_s,seconds\n")
    say("ssl %s on fashion-mnist (%d images, %d steps per epoch, K=%d, B=%d, %s loss, aggregation %s) for %d epochs%s, "
        "seed %d, %d thread(s), %d worker(s)" % (a.model, n, spe, a.K, a.B, a.loss, a.aggregation, a.epochs,
                                                 " (at most %d steps)" % a.max_steps if a.max_steps else "", a.seed,
                                                 a.threads, a.workers))
    meta = {"format": "pt", "source": "bench/torch_train.py --mode ssl", "spec": a.model, "seed": a.seed,
            "data": "fashion-mnist", "K": a.K, "B": a.B, "loss": a.loss, "aggregation": a.aggregation,
            "workers": a.workers, "torch": torch.__version__}

    def save(tag, step, epochs_done):
        if not a.out:
            return None
        m = dict(meta, step=step, epoch=epochs_done)
        path = os.path.join(a.out, tag + ".safetensors")
        save_state(path, backbone, m)
        if tag == "backbone":
            save_state(os.path.join(a.out, "relation.safetensors"), head, m)
        return path

    step, views_done, t_start, last, stop = 0, 0, time.perf_counter(), {}, False
    for epoch in range(a.epochs):
        ep_loss = ep_acc = 0.0
        ep_n = 0
        t0 = time.perf_counter()
        for views in dl:
            bsz = views[0].shape[0]
            x = torch.cat(views, 0)                       # augmentation-major: row k*B + i
            opt.zero_grad(set_to_none=True)
            feats = backbone(x)
            pairs, y = mg.make_pairs(feats, bsz, a.K, a.aggregation)
            z = head(pairs)
            loss = loss_fn(z, y)
            loss.backward()
            opt.step()
            step += 1
            views_done += a.K * bsz
            lv = loss.item()
            if not math.isfinite(lv):
                die("step %d: the loss is not finite (%g); stopping" % (step, lv))
            acc, pacc, nacc = pair_metrics(z, y)
            t1 = time.perf_counter()
            dt, t0 = t1 - t0, t1
            ips = a.K * bsz / (dt if dt > 0 else 1e-9)
            if log:
                log.write("%d,%d,%.6f,%.6f,%.6f,%.6f,%.1f,%.3f\n" % (epoch + 1, step, lv, acc, pacc, nacc, ips,
                                                                     t1 - t_start))
            ep_loss += lv
            ep_acc += acc
            ep_n += 1
            last = {"loss": lv, "pair_acc": acc, "pos_acc": pacc, "neg_acc": nacc}
            if step % 100 == 0 or ep_n == spe:
                say("epoch %d/%d step %d/%d loss %.4f acc %.3f (pos %.3f neg %.3f) %.0f img/s" %
                    (epoch + 1, a.epochs, ep_n, spe, lv, acc, pacc, nacc, ips))
            if a.max_steps and step >= a.max_steps:
                stop = True
                break
        if log:
            log.flush()
        if not stop:
            say("epoch %d: mean loss %.4f, pair accuracy %.4f" % (epoch + 1, ep_loss / max(ep_n, 1), ep_acc / max(ep_n, 1)))
            if a.checkpoint_every and (epoch + 1) % a.checkpoint_every == 0:
                save("epoch_%d" % (epoch + 1), step, epoch + 1)
        else:
            break
    seconds = time.perf_counter() - t_start
    if log:
        log.close()
    epochs_done = step // spe
    ckpt = save("backbone", step, epochs_done)
    print(json.dumps(dict({"mode": "ssl", "model": a.model, "seed": a.seed, "K": a.K, "B": a.B, "loss": a.loss,
                           "steps": step, "epochs": step / spe, "seconds": round(seconds, 3),
                           "images_per_s": round(views_done / seconds, 1) if seconds > 0 else None,
                           "threads": a.threads, "workers": a.workers, "checkpoint": ckpt, "log": log_path},
                          **{"last_" + k: v for k, v in last.items()})))


def features(backbone, pixels, chunk=1000):
    backbone.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(pixels), chunk):
            out.append(backbone(normalize_tensor(pixels[i:i + chunk])))
    return torch.cat(out, 0)


def run_lineval(a):
    if bool(a.checkpoint) == bool(a.random_init):
        die("--mode lineval needs exactly one of --checkpoint FILE and --random-init")
    seed_all(a.seed)
    backbone = build_backbone(a.model)
    if a.checkpoint:
        load_backbone(backbone, a.checkpoint)
    tr_px, tr_y = load_split(a.data_dir, "train")
    te_px, te_y = load_split(a.data_dir, "test")
    check_normalize(tr_px)
    for p in backbone.parameters():
        p.requires_grad_(False)
    t0 = time.perf_counter()
    ftr, fte = features(backbone, tr_px), features(backbone, te_px)
    say("features of %d train and %d test images (%d-d) in %.1f s" % (len(ftr), len(fte), ftr.shape[1],
                                                                     time.perf_counter() - t0))
    ytr, yte = torch.from_numpy(tr_y), torch.from_numpy(te_y)
    clf = nn.Linear(ftr.shape[1], CLASSES)          # PyTorch's default init
    opt = torch.optim.Adam(clf.parameters(), lr=LINEVAL_LR, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator()
    g.manual_seed(a.seed)
    n = len(ftr)
    train_acc = float("nan")
    for ep in range(a.lineval_epochs):
        perm = torch.randperm(n, generator=g)
        correct, loss_sum = 0, 0.0
        for b0 in range(0, n, LINEVAL_BATCH):       # the last partial batch kept
            idx = perm[b0:b0 + LINEVAL_BATCH]
            out = clf(ftr[idx])
            loss = F.cross_entropy(out, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (out.argmax(-1) == ytr[idx]).sum().item()
            loss_sum += loss.item() * len(idx)
        train_acc = correct / n
        if ep == 0 or (ep + 1) % 10 == 0 or ep + 1 == a.lineval_epochs:
            say("classifier epoch %d/%d: loss %.4f, train accuracy %.4f" % (ep + 1, a.lineval_epochs, loss_sum / n,
                                                                           train_acc))
    with torch.no_grad():
        test_acc = (clf(fte).argmax(-1) == yte).to(torch.float64).mean().item()
    say("linear evaluation of %s (%s): test top-1 %.2f%%" % (a.model, a.checkpoint or "random init", 100 * test_acc))
    print(json.dumps({"mode": "lineval", "model": a.model, "backbone": a.checkpoint or "random init", "seed": a.seed,
                      "epochs": a.lineval_epochs, "batch": LINEVAL_BATCH, "test_top1": test_acc,
                      "train_top1": train_acc, "seconds": round(time.perf_counter() - t0, 3)}))


def run_supervised(a):
    tr_px, tr_y = load_split(a.data_dir, "train")
    te_px, te_y = load_split(a.data_dir, "test")
    n = len(tr_px)
    check_last_batch(n, SUP_BATCH, a.drop_last)
    check_normalize(te_px)
    seed_all(a.seed)
    backbone = build_backbone(a.model)
    clf = nn.Linear(backbone.fdim, CLASSES)
    params = list(backbone.parameters()) + list(clf.parameters())
    opt = torch.optim.SGD(params, lr=SUP_LR, momentum=SUP_MOMENTUM, dampening=0, weight_decay=0, nesterov=False)
    dl = loader(Labeled(tr_px, tr_y, supervised_transform()), SUP_BATCH, a.seed, a.workers, a.drop_last)
    spe = steps_of(n, SUP_BATCH, a.drop_last)
    milestones = (int(a.epochs * 0.5), int(a.epochs * 0.75))   # the official StandardModel.train
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    log_path = a.log or (os.path.join(a.out, "metrics.csv") if a.out else None)
    log = open(log_path, "w") if log_path else None
    if log:
        log.write("epoch,step,loss,train_acc,lr,images_per_s,seconds\n")
    say("supervised %s on fashion-mnist (%d images, %d steps per epoch, batch %d) for %d epochs%s, lr x0.1 at epochs "
        "%d and %d (1-based %d, %d), seed %d" % (a.model, n, spe, SUP_BATCH, a.epochs,
                                                 " (at most %d steps)" % a.max_steps if a.max_steps else "",
                                                 milestones[0], milestones[1], milestones[0] + 1, milestones[1] + 1,
                                                 a.seed))
    step, t_start, stop = 0, time.perf_counter(), False
    for epoch in range(a.epochs):
        if epoch in milestones:
            for grp in opt.param_groups:
                grp["lr"] *= 0.1
        lr = opt.param_groups[0]["lr"]
        backbone.train()
        clf.train()
        ep_loss = ep_acc = 0.0
        ep_n = 0
        t0 = time.perf_counter()
        for x, y in dl:
            opt.zero_grad(set_to_none=True)
            out = clf(backbone(x))
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            step += 1
            lv = loss.item()
            if not math.isfinite(lv):
                die("step %d: the loss is not finite (%g); stopping" % (step, lv))
            acc = (out.argmax(-1) == y).to(torch.float64).mean().item()
            t1 = time.perf_counter()
            dt, t0 = t1 - t0, t1
            if log:
                log.write("%d,%d,%.6f,%.6f,%g,%.1f,%.3f\n" % (epoch + 1, step, lv, acc, lr,
                                                             len(y) / (dt if dt > 0 else 1e-9), t1 - t_start))
            ep_loss += lv
            ep_acc += acc
            ep_n += 1
            if a.max_steps and step >= a.max_steps:
                stop = True
                break
        if log:
            log.flush()
        say("supervised epoch %d/%d: loss %.4f, train accuracy %.4f, lr %g%s" %
            (epoch + 1, a.epochs, ep_loss / max(ep_n, 1), ep_acc / max(ep_n, 1), lr, " (stopped early)" if stop else ""))
        if stop:
            break
    if log:
        log.close()
    seconds = time.perf_counter() - t_start
    backbone.eval()
    clf.eval()
    with torch.no_grad():
        logits = torch.cat([clf(backbone(normalize_tensor(te_px[i:i + 1000]))) for i in range(0, len(te_px), 1000)])
    test_acc = (logits.argmax(-1) == torch.from_numpy(te_y)).to(torch.float64).mean().item()
    ckpt = None
    if a.out:
        meta = {"format": "pt", "source": "bench/torch_train.py --mode supervised", "spec": a.model, "seed": a.seed,
                "data": "fashion-mnist", "step": step, "epoch": step // spe, "torch": torch.__version__}
        ckpt = os.path.join(a.out, "backbone.safetensors")
        save_state(ckpt, backbone, meta)
        save_state(os.path.join(a.out, "classifier.safetensors"), clf, meta)
    say("supervised %s: test top-1 %.2f%%" % (a.model, 100 * test_acc))
    print(json.dumps({"mode": "supervised", "model": a.model, "seed": a.seed, "steps": step, "epochs": step / spe,
                      "batch": SUP_BATCH, "test_top1": test_acc, "seconds": round(seconds, 3), "checkpoint": ckpt,
                      "log": log_path}))


# ---------------------------------------------------------------- command line

class Fmt(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows a default only where there is one to show (not None or False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main():
    ap = argparse.ArgumentParser(
        prog="torch_train.py", formatter_class=Fmt, allow_abbrev=False,
        description="PyTorch reference of rrc's Fashion-MNIST figures: self-supervised relational reasoning "
                    "(--mode ssl), linear evaluation (--mode lineval) and the supervised upper bound "
                    "(--mode supervised), as METHOD.md and rrc run them. Details: the module docstring.",
        epilog="examples:\n"
               "  /usr/bin/python3 bench/torch_train.py --mode ssl --epochs 4 --seed 1 --out runs/torch-s1\n"
               "  /usr/bin/python3 bench/torch_train.py --mode lineval --checkpoint runs/torch-s1/backbone.safetensors\n"
               "  ./rrc lineval conv4 --data fashion-mnist --checkpoint runs/torch-s1/backbone.safetensors\n"
               "  /usr/bin/python3 bench/torch_train.py --mode supervised --epochs 100")
    ap.add_argument("--mode", choices=("ssl", "lineval", "supervised"), default="ssl",
                    help="ssl: self-supervised relational reasoning; lineval: linear evaluation of --checkpoint or "
                         "--random-init; supervised: backbone + linear classifier on the labels, then test accuracy")
    ap.add_argument("--model", default="conv4", choices=("conv4", "resnet8", "resnet32", "resnet56"),
                    help="backbone (tests/golden/make_goldens.py's definitions)")
    ap.add_argument("--data-dir", default=FASHION_DIR,
                    help="folder of the Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)")
    ap.add_argument("--seed", type=int, default=SPEC_SEED,
                    help="seeds torch, numpy and random, the batch order and the lineval shuffle")
    ap.add_argument("--epochs", type=int, default=SPEC_EPOCHS,
                    help="ssl and supervised: training epochs (specs/conv4.lua's; make demo uses 10)")
    ap.add_argument("--max-steps", type=int, default=0, help="ssl and supervised: stop after this many steps (0: none)")
    ap.add_argument("--K", type=int, default=SPEC_K, help="ssl: views per image (specs/conv4.lua)")
    ap.add_argument("--B", type=int, default=SPEC_B, help="ssl: images per step (specs/conv4.lua)")
    ap.add_argument("--loss", choices=("focal", "bce"), default="focal",
                    help="ssl: focal (gamma 2, alpha 0.5) or plain BCE, mean over pairs")
    ap.add_argument("--aggregation", choices=("cat", "sum", "mean", "max"), default="cat",
                    help="ssl: how a pair of features is combined for the relation head")
    ap.add_argument("--drop-last", action="store_true",
                    help="ssl and supervised: drop the last partial batch (without it the batch is kept, "
                         "as rrc and the official code do)")
    ap.add_argument("--workers", type=int, default=0,
                    help="DataLoader worker processes making the views (0: in this process); changes the views' "
                         "random draws, not the batch order")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads of the training process, and OPENBLAS_NUM_THREADS unless already set")
    ap.add_argument("--out", default=None,
                    help="ssl and supervised: folder for backbone.safetensors (bare state-dict names, "
                         "readable by rrc lineval), relation.safetensors / classifier.safetensors and, "
                         "without --log, metrics.csv")
    ap.add_argument("--log", default=None,
                    help="ssl and supervised: per-step CSV (without it: OUT/metrics.csv with --out, else none)")
    ap.add_argument("--checkpoint-every", type=int, default=0,
                    help="ssl: also write OUT/epoch_E.safetensors (backbone) every E epochs (0: only at the end)")
    ap.add_argument("--checkpoint", default=None,
                    help="lineval: backbone safetensors (bare names, or an rrc checkpoint's backbone.* names)")
    ap.add_argument("--random-init", action="store_true",
                    help="lineval: a randomly initialised backbone (METHOD.md init, seeded by --seed): the lower bound")
    ap.add_argument("--lineval-epochs", type=int, default=LINEVAL_EPOCHS,
                    help="lineval: classifier epochs (METHOD.md: 100; fewer only for smoke tests)")
    a = ap.parse_args()
    for name in ("epochs", "K", "B", "threads", "lineval_epochs"):
        if getattr(a, name) < 1:
            die("--%s must be at least 1" % name.replace("_", "-"))
    for name in ("max_steps", "workers", "checkpoint_every"):
        if getattr(a, name) < 0:
            die("--%s must not be negative" % name.replace("_", "-"))
    if a.mode != "lineval" and (a.checkpoint or a.random_init):
        die("--checkpoint and --random-init are for --mode lineval")
    torch.set_num_threads(a.threads)
    {"ssl": run_ssl, "lineval": run_lineval, "supervised": run_supervised}[a.mode](a)


if __name__ == "__main__":
    main()
