#!/usr/bin/python3
"""torch_ref.py: the PyTorch reference of one training step of relational
reasoning, for `make bench` (Debian's python3-torch, float32, CPU), and of
the paper's four other baselines (--method rotation | simclr | deepcluster |
dim).

The models and initialisation are those of the golden script
(tests/golden/make_goldens.py: METHOD.md exactly); the step is forward,
backward and torch.optim.Adam, on fixed random views (no augmentation).

    torch_ref.py --model conv4 --K 4 --B 64 --threads 1 --steps 20 --warmup 3

prints one JSON line: median step seconds, backbone images/s, peak RSS.

    torch_ref.py --method rotation --model conv4 --B 128 --threads 1 --steps 20
    torch_ref.py --method simclr --model conv4 --B 128 --threads 1 --steps 20
    torch_ref.py --method deepcluster --model conv4 --B 128 --threads 1 --steps 20
    torch_ref.py --method dim --model conv4 --B 128 --threads 1 --steps 5 --warmup 1

time the baselines' steps as the authors' code trains them (BASELINES.md
sections 1-4; models and initialisation of
tests/golden/make_baseline_goldens.py, in float32): RotationNet rotates B
fixed random images by 0/90/180/270 degrees inside the step (torch.rot90,
rotation-major, 4B backbone images), Linear(F, 4), cross-entropy; SimCLR
runs 2B fixed random views (view-major: row v*B+i is view v of image i)
through the backbone and the projection head, then the reference's loss at
t = 0.5 (partner (i + B) mod 2B, the interleaved reference's i +- 1);
DeepCluster runs B fixed random images through the backbone and the
classifier Linear(F,256) -> BatchNorm1d -> LeakyReLU -> Linear(256,
--clusters), then torch.nn.CrossEntropyLoss(weight=w) against fixed random
pseudolabels y (w = 1 - n_c/N of fixed random labels, the reference's
weights; the classifier's last layer reset as every epoch starts); Deep
InfoMax runs B fixed random images through the backbone, y = its features,
M = layer1's ReLU output before the pool, M' = M rolled by -1, and the
reference's DeepInfoMaxLoss (alpha 0, beta 1, gamma 0.1: local
discriminator on cat(M, y) and cat(M', y), prior discriminator on
u = torch.rand_like(y), drawn every step, and on y). One Adam step per step
(the reference's two groups: backbone, head or loss_fn; lr 1e-3, DIM's
1e-4); images/s counts backbone images (4B, 2B, B, B); --K is ignored.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import make_goldens as mg  # noqa: E402  (models and the focal loss of METHOD.md)


def pairs(feats, B, K):
    """METHOD.md step 3 with cat aggregation (the golden script's make_pairs
    without its self-checks, which would be timed too)."""
    rows, targets, s = [], [], 1
    for k1 in range(K):
        for k2 in range(k1 + 1, K):
            a, b = feats[k1 * B:(k1 + 1) * B], feats[k2 * B:(k2 + 1) * B]
            rows.append(torch.cat([a, b], 1))
            rows.append(torch.cat([a, torch.roll(b, shifts=s, dims=0)], 1))
            targets += [torch.ones(B), torch.zeros(B)]
            s = s + 1 if s + 1 < B else 1
    return torch.cat(rows, 0), torch.cat(targets, 0)


def focal(z, y, gamma=2.0, alpha=0.5):
    """METHOD.md step 5 (the golden script's focal_loss without its float64
    self-check)."""
    p = torch.sigmoid(z)
    p_t = y * p + (1 - y) * (1 - p)
    a_t = y * alpha + (1 - y) * (1 - alpha)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    return (a_t * (1 - p_t) ** gamma * bce).mean()


def simclr_loss(z, B, t=0.5, eps=1e-8):
    """methods/simclr.py: Model.return_loss_fn statement for statement
    (BASELINES.md 1), on VIEW-MAJOR rows: the partner gather is (i + B) mod 2B
    instead of the interleaved i +- 1. Float32, as the reference trains: the
    constant torch.exp(torch.tensor(1 / t)) in the default dtype."""
    n = torch.norm(z, p=2, dim=1, keepdim=True)
    x = (z @ z.t()) / (n * n.t()).clamp(min=eps)
    x = torch.exp(x / t)
    idx = (torch.arange(x.size()[0]) + B) % (2 * B)
    x = x[idx]
    x = x.diag() / (x.sum(0) - torch.exp(torch.tensor(1 / t)))
    return -torch.log(x.mean())


DC_CLUSTERS = 100   # specs/deepcluster_conv4.lua: clusters = 100 (10 x the classes)
DC_LABELS = 1280    # the fixed random pseudolabels DeepCluster's class weights are counted from


def baseline_models(a):
    """The --method's backbone and head (DIM: its loss_fn, the two
    discriminators) in float32, initialised as the golden script does."""
    import make_baseline_goldens as mbg  # (the baselines' models; imported only here)
    if a.method == "dim":
        return mbg.build_dim(a.model, 1)
    if a.method == "deepcluster":
        # mbg.build_models with the spec's clusters instead of the goldens' 10
        torch.manual_seed(1)
        backbone = mg.make_backbone(a.model)
        head = mbg.deepcluster_head(backbone.fdim, a.clusters)
        mg.init_module(backbone)
        mg.init_module(head)
        mbg.deepcluster_reset(head)
        return backbone, head
    return mbg.build_models(a.method, a.model, 1)


def baseline(a):
    """The step of --method rotation | simclr | deepcluster | dim, timed as
    the relational one: (median step seconds, backbone images per step)."""
    import make_baseline_goldens as mbg
    backbone, head = baseline_models(a)
    backbone.train()
    head.train()
    lr = mbg.DIM_LR if a.method == "dim" else mg.ADAM_LR
    opt = torch.optim.Adam([{"params": list(backbone.parameters())}, {"params": list(head.parameters())}],
                           lr=lr, betas=(0.9, 0.999), eps=1e-8)
    rows = {"rotation": 4 * a.B, "simclr": 2 * a.B}.get(a.method, a.B)
    # rotation: B images, rotated inside the step; simclr: 2B views, view-major;
    # deepcluster, dim: B images
    x = torch.randn(2 * a.B if a.method == "simclr" else a.B, 3, 32, 32)
    if a.method == "deepcluster":
        # Model.train: the class weights of the epoch's pseudolabels, one
        # CrossEntropyLoss(weight) per epoch; the batch's pseudolabels y
        g = torch.Generator().manual_seed(2)
        w = mbg.deepcluster_weights(torch.randint(0, a.clusters, (DC_LABELS,), generator=g), a.clusters)
        y = torch.randint(0, a.clusters, (a.B,), generator=g)
        criterion = torch.nn.CrossEntropyLoss(weight=w)
    times = []
    for t in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if a.method == "rotation":
            xr, yr = mbg.rotate_batch(x)     # methods/rotationnet.py: _data_augmentation
            loss = torch.nn.functional.cross_entropy(head(backbone(xr)), yr)
        elif a.method == "simclr":
            loss = simclr_loss(head(backbone(x)), a.B)
        elif a.method == "deepcluster":
            loss = criterion(head(backbone(x)), y)
        else:
            # methods/deepinfomax.py: DIM.train's batch step (mbg.dim_forward,
            # with the prior sample drawn as the reference draws it)
            yf, M = mbg.dim_encoder(backbone, a.model, x)
            M_prime = torch.cat([M[1:], M[0].unsqueeze(0)], dim=0)
            loss = head(yf, M, M_prime, torch.rand_like(yf))
        loss.backward()
        opt.step()
        if t >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="relational", choices=("relational", "rotation", "simclr", "deepcluster", "dim"),
                    help="the step timed: relational reasoning (default), RotationNet, SimCLR, DeepCluster or "
                         "Deep InfoMax (BASELINES.md)")
    ap.add_argument("--model", default="conv4")
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--clusters", type=int, default=DC_CLUSTERS, help="DeepCluster's k (the spec's: 100)")
    ap.add_argument("--head-only", action="store_true", help="time the relation head alone on random features")
    ap.add_argument("--e2e", action="store_true", help="with torchvision/PIL augmentation of K views per image, in process")
    ap.add_argument("--data", default="synthetic",
                    help="e2e images: synthetic (random 32x32 RGB) or fashion-mnist (Debian's, padded to 32x32, gray to RGB)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.method != "relational":
        if a.head_only or a.e2e:
            ap.error("--head-only and --e2e are options of --method relational")
        med, rows = baseline(a)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps({"step_s": med, "images_per_s": rows / med, "peak_rss_mb": rss, "torch": torch.__version__}))
        return
    torch.manual_seed(1)
    backbone, head = mg.build_models(a.model, "cat", 1)
    backbone.train()
    head.train()
    params = list(head.parameters()) + ([] if a.head_only else list(backbone.parameters()))
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    x = torch.randn(a.K * a.B, 3, 32, 32)
    feats_fixed = torch.randn(a.K * a.B, backbone.fdim)
    aug = None
    if a.e2e:
        import numpy as np
        import torchvision.transforms as T
        from PIL import Image
        rng = np.random.default_rng(1)
        if a.data == "fashion-mnist":
            import gzip
            with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
                raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
            pick = rng.choice(len(raw), size=a.B, replace=False)
            images = [Image.fromarray(np.repeat(np.pad(raw[i], 2)[:, :, None], 3, axis=2)) for i in pick]
            mean, std = (0.2190,) * 3, (0.3318,) * 3
        else:
            images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(a.B)]
            mean, std = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
        aug = T.Compose([
            T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), T.Normalize(mean, std)])
    times = []
    for t in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if aug is not None:   # K views of every image, augmentation-major
            x = torch.stack([aug(images[i]) for k in range(a.K) for i in range(a.B)])
        opt.zero_grad(set_to_none=True)
        f = feats_fixed.requires_grad_(False) if a.head_only else backbone(x)
        p, y = pairs(f, a.B, a.K)
        z = head(p).reshape(-1)
        loss = focal(z, y)
        loss.backward()
        opt.step()
        if t >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"step_s": med, "images_per_s": a.K * a.B / med, "peak_rss_mb": rss, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
