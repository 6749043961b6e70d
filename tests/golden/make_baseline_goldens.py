#!/usr/bin/python3
# make_baseline_goldens.py: PyTorch float64 goldens for four of the paper's
# baselines, RotationNet, SimCLR, DeepCluster and Deep InfoMax's training step
# (/work/shared/BASELINES.md sections 0-4), on Conv-4 (and one ResNet-8 case
# each) -> tests/golden/baselines/.
#
#   run with:  /usr/bin/python3 tests/golden/make_baseline_goldens.py
#   needs:     Debian's python3-torch (written against torch 1.13) and numpy.
#
# The backbones, the parameter initialisation (METHOD.md init + the golden
# perturbation of every BatchNorm), the safetensors writer, the Adam reference
# and the kink-margin rule come from make_goldens.py (imported, not copied).
# See README.md next to this script, section E, for what every file holds.
#
# Layout:
#   1. the three methods, as the reference code (methods/rotationnet.py,
#      methods/simclr.py, methods/deepcluster.py: Model.train's batch step)
#      computes them
#   2. independent re-implementations used by the self-checks
#   3. model building, names, kink margin
#   4. one-step goldens   -> baselines/{rotation,simclr,deepcluster}_<model>_B<B>
#   5. 10-step Adam       -> baselines/{rotation,simclr,deepcluster}_conv4_adam10
#   6. Deep InfoMax (methods/deepinfomax.py: the model, its kink margins, its
#      one-step and 10-step Adam goldens -> baselines/dim_*)
#   7. main
#
# Conventions (as in make_goldens.py): F32 tensors are inputs, generated in
# float32 and used via .double(); F64 tensors are results computed entirely
# in float64, under torch.set_default_dtype(torch.float64) (SimCLR's constant
# torch.exp(torch.tensor(1/t)) is created in the default dtype). One thread,
# torch.manual_seed(seed) per case: re-running gives byte-identical files.

import contextlib
import copy
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402  (main() is behind its __main__ guard)

OUT_DIR = os.path.join(HERE, "baselines")
F64 = torch.float64

N_ROT = 4             # RotationNet: 4 rotations, Linear(F, 4)
TEMPERATURE = 0.5     # SimCLR return_loss_fn defaults
NORM_EPS = 1e-8
PROJ_HIDDEN = 256
PROJ_OUT = 64
EXP_1_T_F64 = 7.38905609893065     # exp(1/0.5) in float64 (BASELINES.md 1)
EXP_1_T_F32 = 7.389056205749512    # the same under a float32 default: the trap
N_CLUSTERS = 10       # DeepCluster k in the goldens (the specs: 100; metadata `clusters`)
DC_HIDDEN = 256       # DeepCluster head: Linear(F,256) -> BN1d -> LeakyReLU -> Linear(256,k)
DC_LABELS = 50        # pseudolabels the class weights are counted from (the reference: all N)
DC_W2_STD = 0.01      # the per-epoch reset of linear2.weight: N(0, 0.01)
DC_B2_STD = 0.01      # golden-only perturbation of the reset's zero linear2.bias
DIM_ALPHA = 0.0       # Deep InfoMax weights (train_unsupervised.py): alpha 0 = no global
DIM_BETA = 1.0        # discriminator, beta on the local term, gamma on the prior term
DIM_GAMMA = 0.1
DIM_LOCAL_HIDDEN = 256          # LocalDiscriminator: 1x1 convs C_M+F -> 256 -> 256 -> 1
DIM_PRIOR_HIDDEN = (512, 128)   # PriorDiscriminator: Linear F -> 512 -> 128 -> 1
DIM_LR = 1e-4         # DIM's Adam (both groups); the other methods: mg.ADAM_LR = 1e-3
DIM_M_CHANNELS = {"conv4": 8, "resnet8": 16}
DIM_M_TAP = {"conv4": "layer1.relu", "resnet8": "relu"}   # M = that ReLU's output
# The local discriminator's two ReLUs see 2 x 2 x B x 32 x 32 x 256 inputs (2M at
# B = 2): at make_goldens' 2e-6 about 10-35 of them fall inside the margin per
# draw, so no draw passes. Their margin is 1e-7 (about 1 inside per draw: a few
# redraws); every other ReLU (backbone, prior discriminator) keeps mg.KINK_MARGIN.
DIM_LOCAL_KINK_MARGIN = 1e-7


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# =========================================================================
# 1. the methods
# =========================================================================

def rotate_batch(x):
    """methods/rotationnet.py: _data_augmentation. Rotation-major: row r*B+i
    is rot90(x_i, r) over (H, W), target r."""
    B = x.shape[0]
    xr = torch.cat([x,
                    torch.rot90(x, 1, dims=(2, 3)),
                    torch.rot90(x, 2, dims=(2, 3)),
                    torch.rot90(x, 3, dims=(2, 3))], 0)
    y = torch.cat([torch.full((B,), r, dtype=torch.int64) for r in range(N_ROT)], 0)
    return xr, y


def rotation_forward(backbone, classifier, x):
    """Model.forward + nn.CrossEntropyLoss() (mean over the 4B rows)."""
    xr, y = rotate_batch(x)
    feats = backbone(xr)
    logits = classifier(feats)
    return F.cross_entropy(logits, y), logits, y, feats


def simclr_head(fdim):
    """methods/simclr.py: Model.head (LeakyReLU() = slope 0.01)."""
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(fdim, PROJ_HIDDEN)),
        ("bn1", nn.BatchNorm1d(PROJ_HIDDEN)),
        ("relu", nn.LeakyReLU()),
        ("linear2", nn.Linear(PROJ_HIDDEN, PROJ_OUT)),
    ]))


def simclr_ref_loss(x, t=TEMPERATURE, eps=NORM_EPS):
    """methods/simclr.py: Model.return_loss_fn, statement for statement, on
    the INTERLEAVED rows (2i, 2i+1 = the two views of image i)."""
    n = torch.norm(x, p=2, dim=1, keepdim=True)
    x = (x @ x.t()) / (n * n.t()).clamp(min=eps)
    x = torch.exp(x / t)
    idx = torch.arange(x.size()[0])
    idx[::2] += 1
    idx[1::2] -= 1
    x = x[idx]
    # the constant is created in the default dtype: must be float64 here
    x = x.diag() / (x.sum(0) - torch.exp(torch.tensor(1 / t)))
    return -torch.log(x.mean())


def interleave_perm(B):
    """rrc stores the 2B views view-major (row v*B+i = view v of image i); the
    reference stacks them per image (torch.stack(data_augmented, dim=1).view:
    row 2i+v). perm[2i+v] = v*B+i, so x[perm] is the reference's batch."""
    return torch.tensor([v * B + i for i in range(B) for v in range(2)], dtype=torch.long)


def simclr_forward(backbone, head, x):
    """x: view-major [2B, ...]. Runs the reference on the interleaved batch
    x[perm] (BN statistics over the 2B rows, partner i +- 1 there) and returns
    z and the features back in view-major order. Gradients and running
    statistics do not depend on the row order (BN and the loss are permutation
    invariant as a whole; checked below), so they are rrc's too."""
    B = x.shape[0] // 2
    perm = interleave_perm(B)
    inv = torch.argsort(perm)            # view-major row r = interleaved row inv[r]
    feats_i = backbone(x[perm])
    z_i = head(feats_i)
    L = simclr_ref_loss(z_i)
    return L, z_i[inv], feats_i[inv]


def deepcluster_head(fdim, k=N_CLUSTERS):
    """methods/deepcluster.py: Model.classifier (LeakyReLU() = slope 0.01)."""
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(fdim, DC_HIDDEN)),
        ("bn1", nn.BatchNorm1d(DC_HIDDEN)),
        ("relu", nn.LeakyReLU()),
        ("linear2", nn.Linear(DC_HIDDEN, k)),
    ]))


def deepcluster_reset(classifier):
    """Model.train, start of every epoch: linear2.weight ~ N(0, 0.01), bias
    0. Then, for the goldens only, bias += 0.01 * N(0, 1), so that the bias
    path is checked with a nonzero value. float32, in this order."""
    with torch.no_grad():
        classifier.linear2.weight.normal_(0, DC_W2_STD)
        classifier.linear2.bias.zero_()
        classifier.linear2.bias.add_(DC_B2_STD * torch.randn(classifier.linear2.bias.shape,
                                                             dtype=torch.float32))


def deepcluster_weights(pseudolabels, k):
    """Model.train: w_c = 1 - n_c/N in float32, statement for statement
    (not inverse frequency, despite the comment there)."""
    weight = torch.zeros(k, dtype=torch.float32)
    for value in pseudolabels:
        weight[value] += 1.0
    return 1.0 - (weight / len(pseudolabels))


def deepcluster_forward(backbone, classifier, x, y=None, w=None):
    """Model.forward + torch.nn.CrossEntropyLoss(weight) with its default
    mean reduction, sum_i w[y_i] l_i / sum_i w[y_i]. Without y (the kink
    margin): no loss."""
    feats = backbone(x)
    logits = classifier(feats)
    L = nn.CrossEntropyLoss(weight=w)(logits, y) if y is not None else None
    return L, logits, feats


# =========================================================================
# 2. independent re-implementations (self-checks)
# =========================================================================

def simclr_loss_np(z, t=TEMPERATURE, eps=NORM_EPS):
    """BASELINES.md 1 written out in numpy on VIEW-MAJOR rows, partner
    p(i) = (i + B) mod 2B: L = -log(mean_i E_{p(i),i} / (sum_j E_{j,i} - e^{1/t}))."""
    z = np.asarray(z, dtype=np.float64)
    N = z.shape[0]
    B = N // 2
    nrm = np.sqrt((z * z).sum(1))
    S = (z @ z.T) / np.maximum(np.outer(nrm, nrm), eps)
    E = np.exp(S / t)
    ratios = [E[(i + B) % N, i] / (math.fsum(E[:, i]) - math.exp(1.0 / t)) for i in range(N)]
    return -math.log(math.fsum(ratios) / N)


def simclr_loss_viewmajor(z, t=TEMPERATURE, eps=NORM_EPS):
    """The same in torch (differentiable), view-major partner (i + B) mod 2B."""
    N = z.shape[0]
    B = N // 2
    n = z.norm(dim=1, keepdim=True)
    E = torch.exp((z @ z.t()) / (n * n.t()).clamp(min=eps) / t)
    cols = torch.arange(N)
    ratio = E[(cols + B) % N, cols] / (E.sum(0) - math.exp(1.0 / t))
    return -torch.log(ratio.mean())


def check_rot90():
    """torch.rot90 == the index formulas of BASELINES.md 2 (S = side)."""
    S = 32
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(7), dtype=F64)
    h = torch.arange(S).view(S, 1).expand(S, S)
    w = torch.arange(S).view(1, S).expand(S, S)
    assert torch.equal(torch.rot90(x, 1, dims=(2, 3)), x[:, :, w, S - 1 - h])
    assert torch.equal(torch.rot90(x, 2, dims=(2, 3)), x[:, :, S - 1 - h, S - 1 - w])
    assert torch.equal(torch.rot90(x, 3, dims=(2, 3)), x[:, :, S - 1 - w, h])


def check_ce(logits, y, L):
    """CE = mean -log softmax(z)[y]; d/dz = (softmax - onehot)/N."""
    z = logits.detach().clone().requires_grad_(True)
    L2 = F.cross_entropy(z, y)
    (g,) = torch.autograd.grad(L2, z)
    lsm = z.detach() - torch.logsumexp(z.detach(), 1, keepdim=True)
    direct = -lsm[torch.arange(z.shape[0]), y].mean()
    assert abs(float(direct) - float(L)) <= 1e-14 * abs(float(L)), (float(direct), float(L))
    closed = (torch.softmax(z.detach(), 1) - F.one_hot(y, N_ROT).to(F64)) / z.shape[0]
    assert torch.allclose(g, closed, rtol=1e-12, atol=1e-17), (g - closed).abs().max()


def check_simclr_loss(z_vm, L):
    """(1) the reference loss == the numpy view-major formula to 1e-12
    relative; (2) autograd dL/dz (through the reference code on the
    interleaved order) == central finite differences of the numpy formula at a
    few elements. Returns (relative loss error, max relative FD error)."""
    z = z_vm.detach().clone()
    N = z.shape[0]
    B = N // 2
    ref = simclr_loss_np(z.numpy())
    rel = abs(float(L) - ref) / abs(ref)
    assert rel <= 1e-12, (float(L), ref, rel)

    perm = interleave_perm(B)
    zz = z.clone().requires_grad_(True)
    L2 = simclr_ref_loss(zz[perm])
    assert float(L2) == float(L)
    (g,) = torch.autograd.grad(L2, zz)
    gmax = float(g.abs().max())
    flat = int(g.abs().argmax())
    elems = [(0, 0), (1, 17), (B, 3), (N - 1, PROJ_OUT - 1), (flat // PROJ_OUT, flat % PROJ_OUT)]
    h = 1e-6
    worst = 0.0
    for (r, c) in elems:
        zp, zm = z.numpy().copy(), z.numpy().copy()
        zp[r, c] += h
        zm[r, c] -= h
        fd = (simclr_loss_np(zp) - simclr_loss_np(zm)) / (2 * h)
        err = abs(fd - float(g[r, c]))
        assert err <= 1e-6 * abs(float(g[r, c])) + 1e-9 * gmax, (r, c, fd, float(g[r, c]))
        worst = max(worst, err / max(abs(float(g[r, c])), 1e-300))
    return rel, worst


def weighted_ce_np(z, y, w):
    """BASELINES.md 3 step 5 written out in numpy: l_i = logsumexp(z_i) -
    z_i[y_i], L = sum_i w[y_i] l_i / sum_i w[y_i]."""
    z = np.asarray(z, dtype=np.float64)
    num, den = [], []
    for i in range(z.shape[0]):
        m = float(z[i].max())
        lse = m + math.log(math.fsum(math.exp(float(v) - m) for v in z[i]))
        wi = float(w[int(y[i])])
        num.append(wi * (lse - float(z[i, int(y[i])])))
        den.append(wi)
    return math.fsum(num) / math.fsum(den)


def check_weighted_ce(logits, y, w, L):
    """nn.CrossEntropyLoss(weight=w) (1) equals sum_i w[y_i] l_i / sum_i
    w[y_i], written out in torch and (independently) in numpy, to 1e-12
    relative, and differs from the unweighted mean (the weights matter);
    (2) its autograd gradient w.r.t. the logits equals
    w[y_i] (softmax_i - onehot_i) / sum_j w[y_j], to 1e-12 of its max.
    Returns the three relative errors (torch formula, numpy, gradient)."""
    z = logits.detach().clone().requires_grad_(True)
    L2 = nn.CrossEntropyLoss(weight=w)(z, y)
    assert float(L2) == float(L)
    (g,) = torch.autograd.grad(L2, z)
    zd = z.detach()
    lsm = zd - torch.logsumexp(zd, 1, keepdim=True)
    l = -lsm[torch.arange(zd.shape[0]), y]
    wy = w[y]
    direct = (wy * l).sum() / wy.sum()
    rel_t = abs(float(direct) - float(L)) / abs(float(L))
    assert rel_t <= 1e-12, (float(direct), float(L))
    ref = weighted_ce_np(zd.numpy(), y.numpy(), w.numpy())
    rel_n = abs(ref - float(L)) / abs(ref)
    assert rel_n <= 1e-12, (ref, float(L))
    assert abs(float(l.mean()) - float(L)) > 1e-9 * abs(float(L)), "weights without effect"
    closed = wy[:, None] * (torch.softmax(zd, 1) - F.one_hot(y, zd.shape[1]).to(F64)) / wy.sum()
    rel_g = float((g - closed).abs().max()) / float(closed.abs().max())
    assert rel_g <= 1e-12, rel_g
    return rel_t, rel_n, rel_g


def close(a, b, rtol, atol):
    return bool(((a - b).abs() <= rtol * b.abs() + atol).all())


def check_simclr_permutation(backbone0, head0, x64, L, grads, stats):
    """Runs fresh float64 copies of the initial models on the VIEW-MAJOR batch
    with the view-major loss (partner (i+B) mod 2B): loss, gradients and
    running statistics equal the interleaved reference's (to rounding: the
    sums run in another order). grads / stats: [(name, tensor)] in order.
    Returns the largest relative gradient difference (scaled by the tensor's max)."""
    bb = copy.deepcopy(backbone0).double().train()
    hd = copy.deepcopy(head0).double().train()
    L2 = simclr_loss_viewmajor(hd(bb(x64)))
    L2.backward()
    assert abs(float(L2) - float(L)) <= 1e-12 * abs(float(L)), (float(L2), float(L))
    p2 = [p.grad for p in list(bb.parameters()) + list(hd.parameters())]
    worst = 0.0
    for (name, g), g2 in zip(grads, p2):
        scale = float(g.abs().max())
        if name == "head.linear1.bias":
            # mathematically 0 (BN follows): rounding residue only
            assert float(g2.abs().max()) < 1e-12 and scale < 1e-12, name
            continue
        assert close(g2, g, 1e-9, 1e-11 * scale), (name, (g2 - g).abs().max())
        worst = max(worst, float((g2 - g).abs().max()) / scale)
    s2 = [v for k, v in list(bb.state_dict().items()) + list(hd.state_dict().items())
          if k.endswith("running_mean") or k.endswith("running_var")]
    assert len(s2) == len(stats)
    for (name, s), s_2 in zip(stats, s2):
        assert close(s_2, s, 1e-12, 1e-13), name
    return worst


def check_constant():
    with default_dtype(F64):
        c64 = float(torch.exp(torch.tensor(1 / TEMPERATURE)))
    with default_dtype(torch.float32):
        c32 = float(torch.exp(torch.tensor(1 / TEMPERATURE)))
    assert c64 == EXP_1_T_F64 == math.exp(2.0), c64
    assert c32 == EXP_1_T_F32, c32


# =========================================================================
# 3. models, names, kink margin
# =========================================================================

METHODS = {
    # method: (head prefix, head builder, forward)
    "rotation": ("classifier", lambda fdim: nn.Linear(fdim, N_ROT), rotation_forward),
    "simclr": ("head", simclr_head, simclr_forward),
    "deepcluster": ("classifier", deepcluster_head, deepcluster_forward),
}


def build_models(method, model, seed):
    """As make_goldens.build_models: seed, build backbone then head in
    float32, METHOD.md init + golden BN perturbation (backbone, then head).
    DeepCluster then resets linear2 as every epoch does (deepcluster_reset)."""
    torch.manual_seed(seed)
    backbone = mg.make_backbone(model)
    head = METHODS[method][1](backbone.fdim)
    mg.init_module(backbone)
    mg.init_module(head)
    if method == "deepcluster":
        deepcluster_reset(head)
    return backbone, head


def full_state(backbone, head, hp, with_nbt=True):
    out = []
    for prefix, mod in (("backbone.", backbone), (hp + ".", head)):
        for k, v in mod.state_dict().items():
            if k.endswith("num_batches_tracked") and not with_nbt:
                continue
            out.append((prefix + k, v))
    return out


def named_params(backbone, head, hp):
    return [("backbone." + k, v) for k, v in backbone.named_parameters()] + \
           [(hp + "." + k, v) for k, v in head.named_parameters()]


def running_stats(backbone, head, hp):
    return [(k, v) for k, v in full_state(backbone, head, hp, with_nbt=False)
            if k.endswith("running_mean") or k.endswith("running_var")]


def initial_tensors(backbone, head, hp, with_nbt):
    out = []
    for k, v in full_state(backbone, head, hp, with_nbt=with_nbt):
        if k.endswith("num_batches_tracked"):
            out.append((k, v.detach().clone().to(torch.int64).reshape([])))
        else:
            assert v.dtype == torch.float32
            out.append((k, v.detach().clone()))
    return out


def kink_margin(method, backbone, head, x):
    """make_goldens.kink_margin for these methods: min |input| of every ReLU /
    LeakyReLU of one float64 training-mode forward on copies."""
    bb, hd = copy.deepcopy(backbone).double().train(), copy.deepcopy(head).double().train()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().abs().min().item()))
             for mod in (bb, hd) for m in mod.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    with torch.no_grad(), default_dtype(F64):
        METHODS[method][2](bb, hd, x.double())
    for h in hooks:
        h.remove()
    return min(seen)


def draw_views(method, backbone, head, B):
    """Standard normal views, redrawn (as make_goldens' step cases) until no
    ReLU / LeakyReLU input is within mg.KINK_MARGIN of 0."""
    rows = 2 * B if method == "simclr" else B
    for _ in range(200):
        x = torch.randn(rows, 3, 32, 32, dtype=torch.float32)
        if kink_margin(method, backbone, head, x) >= mg.KINK_MARGIN:
            return x
    raise RuntimeError("no views without a near-kink ReLU input in 200 draws")


def draw_pseudolabels(B, k=N_CLUSTERS, n=DC_LABELS):
    """DeepCluster's y and w: n pseudolabels uniform over k clusters, w from
    their counts (deepcluster_weights), y = B of them at random positions.
    Redrawn until the w[y_i] are not all equal (else the weighting cancels).
    Returns y (int64 [B]) and w (float32 [k])."""
    for _ in range(100):
        labels = torch.randint(0, k, (n,))
        w = deepcluster_weights(labels, k)
        y = labels[torch.randperm(n)[:B]]
        if len(set(w.tolist())) > 1 and len(set(w[y].tolist())) > 1:
            return y, w
    raise RuntimeError("no pseudolabels with unequal weights in 100 draws")


def base_metadata(method, model, B, seed, extra=None):
    md = OrderedDict([("model", "%s_%s" % (method, model)), ("method", method),
                      ("backbone", model), ("B", B), ("seed", seed),
                      ("bn_eps", "1e-5"), ("bn_momentum", "0.1")])
    if method == "rotation":
        md["classes"] = str(N_ROT)
        md["rows"] = str(N_ROT * B)
    elif method == "deepcluster":
        md.update([("clusters", str(N_CLUSTERS)), ("hidden", str(DC_HIDDEN)), ("slope", "0.01"),
                   ("rows", str(B)), ("weight_labels", str(DC_LABELS)),
                   ("linear2_init", "weight N(0,0.01); bias 0 + 0.01*N(0,1) (golden perturbation)")])
    elif method == "dim":
        md.update([("alpha", "0"), ("beta", "1"), ("gamma", "0.1"), ("rows", str(B)),
                   ("m_channels", str(DIM_M_CHANNELS[model])), ("m_tap", DIM_M_TAP[model]),
                   ("local_hidden", str(DIM_LOCAL_HIDDEN)),
                   ("prior_hidden", "%d,%d" % DIM_PRIOR_HIDDEN),
                   ("negatives", "M rolled by -1 along the batch: M'_i = M_(i+1) mod B"),
                   ("disc_init", "PyTorch default (U(+-1/sqrt(fan_in)) weight and bias)"),
                   ("kink_margin", "%g" % mg.KINK_MARGIN),
                   ("kink_margin_local", "%g" % DIM_LOCAL_KINK_MARGIN)])
    else:
        md.update([("temperature", "0.5"), ("norm_eps", "1e-8"), ("hidden", str(PROJ_HIDDEN)),
                   ("out_dim", str(PROJ_OUT)), ("slope", "0.01"), ("rows", str(2 * B)),
                   ("row_order", "view-major")])
    md["torch"] = torch.__version__
    if extra:
        md.update(extra)
    return md


# =========================================================================
# 4. one training step, no update
# =========================================================================

ROTATION_CASES = [("conv4", 2, 501), ("conv4", 3, 502), ("conv4", 5, 503), ("resnet8", 3, 511)]
SIMCLR_CASES = [("conv4", 2, 601), ("conv4", 3, 602), ("conv4", 4, 603), ("resnet8", 3, 611)]
DEEPCLUSTER_CASES = [("conv4", 3, 701), ("conv4", 5, 702), ("resnet8", 3, 711)]


def run_step_case(method, idx, model, B, seed):
    hp, _, forward = METHODS[method]
    backbone, head = build_models(method, model, seed)
    if method == "deepcluster":
        y, w = draw_pseudolabels(B)
    x = draw_views(method, backbone, head, B)
    with_nbt = idx % 2 == 1          # as make_goldens: every second case
    init = initial_tensors(backbone, head, hp, with_nbt)
    backbone0, head0 = copy.deepcopy(backbone), copy.deepcopy(head)
    checks = OrderedDict()

    with default_dtype(F64):
        backbone.double().train()
        head.double().train()
        x64 = x.double()
        if method == "rotation":
            L, logits, y, feats = forward(backbone, head, x64)
        elif method == "deepcluster":
            L, logits, feats = forward(backbone, head, x64, y, w.double())
        else:
            L, z, feats = forward(backbone, head, x64)
        L.backward()
        grads = [(n, p.grad.detach()) for n, p in named_params(backbone, head, hp)]
        stats = [(n, v.detach()) for n, v in running_stats(backbone, head, hp)]
        if method == "rotation":
            check_ce(logits, y, L)
        elif method == "deepcluster":
            checks["ce_rel"], checks["ce_np_rel"], checks["dz_rel"] = \
                check_weighted_ce(logits, y, w.double(), L)
            checks["l1b_grad"] = float(head.linear1.bias.grad.abs().max())
        else:
            checks["loss_rel"], checks["fd_rel"] = check_simclr_loss(z, L)
            checks["perm_rel"] = check_simclr_permutation(backbone0, head0, x64, L, grads, stats)

    tensors = [("x", x)]
    if method == "deepcluster":
        tensors += [("y", y.to(torch.float32)), ("w", w)]
    tensors += init
    tensors.append(("loss", L.detach().reshape(1)))
    if method == "deepcluster":
        acc = (logits.detach().argmax(-1) == y).to(F64).mean()
        top2 = logits.detach().topk(2, dim=1).values
        checks["top2_gap"] = float((top2[:, 0] - top2[:, 1]).min())
        assert checks["top2_gap"] >= 1e-4
        tensors += [("logits", logits.detach()), ("acc", acc.reshape(1)),
                    ("features", feats.detach())]
    elif method == "rotation":
        acc = (logits.detach().argmax(-1) == y).to(F64).mean()
        # argmax robust to float32 rounding: top-1 ahead of top-2 by >= 1e-4
        top2 = logits.detach().topk(2, dim=1).values
        assert float((top2[:, 0] - top2[:, 1]).min()) >= 1e-4
        tensors += [("logits", logits.detach()), ("targets", y.to(F64)),
                    ("acc", acc.reshape(1)), ("features", feats.detach())]
    else:
        tensors += [("z", z.detach()), ("features", feats.detach())]
    for name, g in grads:
        assert g.dtype == F64, name
        tensors.append(("grad." + name, g))
    for name, v in stats:
        assert v.dtype == F64, name
        tensors.append(("state." + name, v))
    fname = "%s_%s_B%d.safetensors" % (method, model, B)
    md = base_metadata(method, model, B, seed, {"num_batches_tracked": "1" if with_nbt else "0"})
    size = mg.write_safetensors(os.path.join(OUT_DIR, fname), tensors, md)
    return fname, size, float(L), checks


# =========================================================================
# 5. 10 Adam steps
# =========================================================================

ADAM_CASES = [
    # (file stem, method, model, B, steps, seed)
    ("rotation_conv4_adam10", "rotation", "conv4", 3, 10, 521),
    ("simclr_conv4_adam10", "simclr", "conv4", 3, 10, 621),
    ("deepcluster_conv4_adam10", "deepcluster", "conv4", 3, 10, 721),
]


def run_adam_case(stem, method, model, B, steps, seed):
    """As make_goldens.run_adam_case: the same views x at every step, forward
    in training mode (updates the running statistics), backward, Adam update
    of every parameter; torch.optim.Adam checked against METHOD.md step 6.
    The reference has two parameter groups (backbone, head), both lr 1e-3."""
    hp, _, forward = METHODS[method]
    backbone, head = build_models(method, model, seed)
    if method == "deepcluster":
        y, w = draw_pseudolabels(B)
    x = draw_views(method, backbone, head, B)
    init = initial_tensors(backbone, head, hp, with_nbt=False)

    losses = []
    with default_dtype(F64):
        backbone.double().train()
        head.double().train()
        groups = [{"params": list(backbone.parameters()), "lr": mg.ADAM_LR},
                  {"params": list(head.parameters()), "lr": mg.ADAM_LR}]
        opt = torch.optim.Adam(groups, lr=mg.ADAM_LR, betas=mg.ADAM_BETAS, eps=mg.ADAM_EPS,
                               weight_decay=0, amsgrad=False)
        params = [p for _, p in named_params(backbone, head, hp)]
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        x64 = x.double()
        args = (y, w.double()) if method == "deepcluster" else ()
        for t in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            L = forward(backbone, head, x64, *args)[0]
            L.backward()
            losses.append(float(L))
            expected = mg.adam_reference_update([p.detach() for p in params],
                                                [p.grad.detach() for p in params], m, v, t)
            opt.step()
            for p, e in zip(params, expected):
                assert torch.allclose(p.detach(), e, rtol=1e-14, atol=1e-17), (p.detach() - e).abs().max()

    tensors = [("x", x)]
    if method == "deepcluster":
        tensors += [("y", y.to(torch.float32)), ("w", w)]
    tensors += init
    tensors.append(("losses", torch.tensor(losses, dtype=F64)))
    for name, val in full_state(backbone, head, hp, with_nbt=False):
        assert val.dtype == F64, name
        tensors.append(("final." + name, val.detach()))
    md = base_metadata(method, model, B, seed, OrderedDict([
        ("steps", steps), ("optimizer", "adam"), ("lr", "1e-3"), ("beta1", "0.9"),
        ("beta2", "0.999"), ("eps", "1e-8"), ("weight_decay", "0")]))
    fname = stem + ".safetensors"
    size = mg.write_safetensors(os.path.join(OUT_DIR, fname), tensors, md)
    return fname, size, losses


# =========================================================================
# 6. Deep InfoMax (methods/deepinfomax.py, BASELINES.md 4)
# =========================================================================

def _trace(trace, h):
    if trace is not None:
        trace.append(h.detach().abs().min().item())


class LocalDiscriminator(nn.Module):
    """methods/deepinfomax.py: LocalDiscriminator, F.relu after c0 and c1.
    `trace`, when a list, collects min |input| of the two ReLUs (kink margin)."""

    def __init__(self, y_size, m_channels):
        super().__init__()
        self.c0 = nn.Conv2d(y_size + m_channels, DIM_LOCAL_HIDDEN, kernel_size=1)
        self.c1 = nn.Conv2d(DIM_LOCAL_HIDDEN, DIM_LOCAL_HIDDEN, kernel_size=1)
        self.c2 = nn.Conv2d(DIM_LOCAL_HIDDEN, 1, kernel_size=1)
        self.trace = None

    def forward(self, x):
        h = self.c0(x)
        _trace(self.trace, h)
        h = F.relu(h)
        h = self.c1(h)
        _trace(self.trace, h)
        h = F.relu(h)
        return self.c2(h)


class PriorDiscriminator(nn.Module):
    """methods/deepinfomax.py: PriorDiscriminator (sigmoid output). `logit`
    is the pre-sigmoid value (self-checks only)."""

    def __init__(self, y_size):
        super().__init__()
        self.l0 = nn.Linear(y_size, DIM_PRIOR_HIDDEN[0])
        self.l1 = nn.Linear(DIM_PRIOR_HIDDEN[0], DIM_PRIOR_HIDDEN[1])
        self.l2 = nn.Linear(DIM_PRIOR_HIDDEN[1], 1)
        self.trace = None

    def logit(self, x):
        h = self.l0(x)
        _trace(self.trace, h)
        h = F.relu(h)
        h = self.l1(h)
        _trace(self.trace, h)
        h = F.relu(h)
        return self.l2(h)

    def forward(self, x):
        return torch.sigmoid(self.logit(x))


class DeepInfoMaxLoss(nn.Module):
    """methods/deepinfomax.py: DeepInfoMaxLoss with alpha = 0 (no
    global_d is built), beta = 1, gamma = 0.1; the prior sample u, the
    reference's torch.rand_like(y), is an argument. Statement for statement
    otherwise. `parts` keeps (LOCAL, PRIOR) of the last call."""

    def __init__(self, y_size, m_channels, beta=DIM_BETA, gamma=DIM_GAMMA):
        super().__init__()
        self.local_d = LocalDiscriminator(y_size, m_channels)
        self.prior_d = PriorDiscriminator(y_size)
        self.beta = beta
        self.gamma = gamma
        self.parts = None

    def forward(self, y, M, M_prime, u):
        y_expanded = y.unsqueeze(-1).unsqueeze(-1)
        y_expanded = y_expanded.expand(-1, -1, M.shape[2], M.shape[3])
        y_M = torch.cat((M, y_expanded), dim=1)
        y_M_prime = torch.cat((M_prime, y_expanded), dim=1)
        Ej = -F.softplus(-self.local_d(y_M)).mean()
        Em = F.softplus(self.local_d(y_M_prime)).mean()
        LOCAL = (Em - Ej) * self.beta
        GLOBAL = 0.0                                   # alpha = 0
        prior = u                                      # torch.rand_like(y)
        term_a = torch.log(self.prior_d(prior)).mean()
        term_b = torch.log(1.0 - self.prior_d(y)).mean()
        PRIOR = - (term_a + term_b) * self.gamma
        self.parts = (LOCAL.detach(), PRIOR.detach())
        return LOCAL + GLOBAL + PRIOR


def dim_encoder(backbone, model, x):
    """methods/deepinfomax.py: Encoder.forward_conv4 / forward_resnet, layer
    by layer: y = the features, M = the output of the backbone's first ReLU
    (conv4: layer1's, before its pool; resnet: the stem's)."""
    fe = backbone
    if model == "conv4":
        x = fe.layer1.conv(x)
        x = fe.layer1.bn(x)
        M = fe.layer1.relu(x)
        x = fe.layer1.pool(M)
        x = fe.layer2(x)
        x = fe.layer3(x)
        x = fe.layer4(x)
        x = torch.flatten(x, 1)
    else:
        x = fe.conv1(x)
        x = fe.bn1(x)
        M = fe.relu(x)
        x = fe.layer1(M)
        x = fe.layer2(x)
        x = fe.layer3(x)
        x = fe.avgpool(x)
        x = x.view(x.size(0), -1)
    return x, M


def dim_forward(backbone, loss_fn, model, x, u):
    """DIM.train's batch step up to the loss: M' = M rolled by -1."""
    y, M = dim_encoder(backbone, model, x)
    M_prime = torch.cat([M[1:], M[0].unsqueeze(0)], dim=0)
    L = loss_fn(y, M, M_prime, u)
    return L, y, M


def build_dim(model, seed):
    """Seed, build backbone then loss_fn (local_d, prior_d: PyTorch default
    init) in float32; METHOD.md init + golden BN perturbation of the backbone
    only (the discriminators have no BN; their convs keep the default init)."""
    torch.manual_seed(seed)
    backbone = mg.make_backbone(model)
    loss_fn = DeepInfoMaxLoss(backbone.fdim, DIM_M_CHANNELS[model])
    mg.init_module(backbone)
    return backbone, loss_fn


def dim_kink_margins(model, backbone, loss_fn, x, u):
    """min |input| over (1) every backbone ReLU and the prior discriminator's
    ReLUs (both calls), (2) the local discriminator's ReLUs (both calls), of
    one float64 training-mode step on copies."""
    bb, lf = copy.deepcopy(backbone).double().train(), copy.deepcopy(loss_fn).double().train()
    seen, local = [], []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().abs().min().item()))
             for m in bb.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    lf.prior_d.trace, lf.local_d.trace = seen, local
    with torch.no_grad(), default_dtype(F64):
        dim_forward(bb, lf, model, x.double(), u.double())
    for h in hooks:
        h.remove()
    n_bb = {"conv4": 4, "resnet8": 7}[model]
    assert len(seen) == n_bb + 4 and len(local) == 4, (len(seen), len(local))
    return min(seen), min(local)


def draw_dim_inputs(model, backbone, loss_fn, B, side=32):
    """x standard normal, u uniform [0,1) (both F32), redrawn together until
    no ReLU input is within its margin (DIM_LOCAL_KINK_MARGIN for the local
    discriminator, mg.KINK_MARGIN otherwise). Returns x, u, the number of
    draws and the two margins."""
    for n in range(1, 201):
        x = torch.randn(B, 3, side, side, dtype=torch.float32)
        u = torch.rand(B, backbone.fdim, dtype=torch.float32)
        m, ml = dim_kink_margins(model, backbone, loss_fn, x, u)
        if m >= mg.KINK_MARGIN and ml >= DIM_LOCAL_KINK_MARGIN:
            return x, u, n, m, ml
    raise RuntimeError("no (x, u) without a near-kink ReLU input in 200 draws")


def softplus_np(v):
    """log(1 + e^v), stable, float64 numpy."""
    return np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v)))


def check_dim_prior(loss_fn, y, u, PRIOR):
    """rrc's stabler prior form, gamma * (mean softplus(-p_u) + mean
    softplus(p_y)) with p the pre-sigmoid logits, equals the reference's
    -gamma * (mean log D(u) + mean log(1 - D(y))) to 1e-12 relative.
    Returns the relative difference."""
    with torch.no_grad():
        pu, py = loss_fn.prior_d.logit(u), loss_fn.prior_d.logit(y)
        assert torch.equal(torch.sigmoid(pu), loss_fn.prior_d(u))
        stable = loss_fn.gamma * (F.softplus(-pu).mean() + F.softplus(py).mean())
    rel = abs(float(stable) - float(PRIOR)) / abs(float(PRIOR))
    assert rel <= 1e-12, (float(stable), float(PRIOR), rel)
    return rel


def check_dim(model, backbone0, loss_fn, x64, u64, y, M, L):
    """(1) M's shape; the hand-run encoder (dim_encoder) equals a forward
    hook on the tapped ReLU + the backbone's own forward, on a fresh float64
    copy of the initial backbone (bit for bit); (2) the stable prior form
    (check_dim_prior); (3) the whole loss from the discriminators' logits,
    written out in numpy (math.fsum, stable softplus), to 1e-12 relative;
    (4) |T| < 20, so torch's softplus threshold (x > 20: x) is not reached.
    Returns (prior_rel, np_rel, max |T|)."""
    B = x64.shape[0]
    assert tuple(M.shape) == (B, DIM_M_CHANNELS[model], 32, 32), tuple(M.shape)
    bb = copy.deepcopy(backbone0).double().train()
    tap = dict(bb.named_modules())[DIM_M_TAP[model]]
    got = []
    h = tap.register_forward_hook(lambda m, i, o: got.append(o.detach()))
    with torch.no_grad():
        y2 = bb(x64)
    h.remove()
    assert len(got) == 1 and torch.equal(got[0], M.detach()) and torch.equal(y2, y.detach())

    LOCAL, PRIOR = loss_fn.parts
    assert float(LOCAL + PRIOR) == float(L)
    prior_rel = check_dim_prior(loss_fn, y.detach(), u64, PRIOR)
    with torch.no_grad():
        yd, Md = y.detach(), M.detach()
        ye = yd[:, :, None, None].expand(-1, -1, 32, 32)
        Mp = torch.roll(Md, -1, 0)
        t_pos = loss_fn.local_d(torch.cat((Md, ye), 1)).numpy().ravel()
        t_neg = loss_fn.local_d(torch.cat((Mp, ye), 1)).numpy().ravel()
        pu = loss_fn.prior_d.logit(u64).numpy().ravel()
        py = loss_fn.prior_d.logit(yd).numpy().ravel()
    local = DIM_BETA * (math.fsum(softplus_np(t_neg)) / t_neg.size +
                        math.fsum(softplus_np(-t_pos)) / t_pos.size)
    prior = DIM_GAMMA * (math.fsum(softplus_np(-pu)) / pu.size + math.fsum(softplus_np(py)) / py.size)
    ref = local + prior
    np_rel = abs(ref - float(L)) / abs(ref)
    assert np_rel <= 1e-12, (ref, float(L))
    assert abs(local - float(LOCAL)) <= 1e-12 * abs(local), (local, float(LOCAL))
    tmax = float(max(np.abs(t_pos).max(), np.abs(t_neg).max()))
    assert tmax < 20.0, tmax
    return prior_rel, np_rel, tmax


DIM_CASES = [("conv4", 2, 801), ("conv4", 3, 802), ("resnet8", 2, 811)]
DIM_ADAM_CASE = ("dim_conv4_adam10", "conv4", 2, 10, 821)
DIM_ADAM_SIDE = 16


def run_dim_step_case(idx, model, B, seed):
    backbone, loss_fn = build_dim(model, seed)
    x, u, draws, margin, margin_local = draw_dim_inputs(model, backbone, loss_fn, B)
    with_nbt = idx % 2 == 1
    init = initial_tensors(backbone, loss_fn, "loss_fn", with_nbt)
    backbone0 = copy.deepcopy(backbone)
    checks = OrderedDict()

    with default_dtype(F64):
        backbone.double().train()
        loss_fn.double().train()
        x64, u64 = x.double(), u.double()
        L, y, M = dim_forward(backbone, loss_fn, model, x64, u64)
        L.backward()
        grads = [(n, p.grad.detach()) for n, p in named_params(backbone, loss_fn, "loss_fn")]
        stats = [(n, v.detach()) for n, v in running_stats(backbone, loss_fn, "loss_fn")]
        checks["prior_rel"], checks["np_rel"], checks["max|T|"] = \
            check_dim(model, backbone0, loss_fn, x64, u64, y, M, L)
    checks["draws"] = draws
    checks["kink"], checks["kink_local"] = margin, margin_local
    LOCAL, PRIOR = loss_fn.parts

    tensors = [("x", x), ("u", u)] + init
    tensors += [("loss", L.detach().reshape(1)), ("loss_local", LOCAL.reshape(1)),
                ("loss_prior", PRIOR.reshape(1)), ("features", y.detach())]
    for name, g in grads:
        assert g.dtype == F64, name
        tensors.append(("grad." + name, g))
    for name, v in stats:
        assert v.dtype == F64, name
        tensors.append(("state." + name, v))
    fname = "dim_%s_B%d.safetensors" % (model, B)
    md = base_metadata("dim", model, B, seed, {"num_batches_tracked": "1" if with_nbt else "0"})
    size = mg.write_safetensors(os.path.join(OUT_DIR, fname), tensors, md)
    return fname, size, float(L), checks


def adam_update_lr(params, grads, m, v, t, lr):
    """mg.adam_reference_update (METHOD.md step 6) with lr as an argument."""
    b1, b2 = mg.ADAM_BETAS
    new = []
    for p, g, mi, vi in zip(params, grads, m, v):
        mi.mul_(b1).add_((1 - b1) * g)
        vi.mul_(b2).add_((1 - b2) * g * g)
        denom = vi.sqrt() / math.sqrt(1 - b2 ** t) + mg.ADAM_EPS
        new.append(p - (lr / (1 - b1 ** t)) * mi / denom)
    return new


def run_dim_adam_case(stem, model, B, steps, seed):
    """As run_adam_case, DIM.train's step: the same x and u at every step,
    Adam with two groups (encoder, loss_fn), both lr 1e-4; checked against
    METHOD.md step 6 and the stable prior form at every step."""
    backbone, loss_fn = build_dim(model, seed)
    # 16x16 views (Conv-4 takes any side divisible by 8): the local
    # discriminator runs at every position, and 10 steps of it at 32x32 are
    # slow on rrc's float64 interpreter, which runs them in every test run
    # (tests/golden/README.md has the times)
    x, u = draw_dim_inputs(model, backbone, loss_fn, B, side=DIM_ADAM_SIDE)[:2]
    init = initial_tensors(backbone, loss_fn, "loss_fn", with_nbt=False)

    losses, worst = [], 0.0
    with default_dtype(F64):
        backbone.double().train()
        loss_fn.double().train()
        groups = [{"params": list(backbone.parameters()), "lr": DIM_LR},
                  {"params": list(loss_fn.parameters()), "lr": DIM_LR}]
        opt = torch.optim.Adam(groups, lr=DIM_LR, betas=mg.ADAM_BETAS, eps=mg.ADAM_EPS,
                               weight_decay=0, amsgrad=False)
        params = [p for _, p in named_params(backbone, loss_fn, "loss_fn")]
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        x64, u64 = x.double(), u.double()
        for t in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            L, y, _ = dim_forward(backbone, loss_fn, model, x64, u64)
            L.backward()
            losses.append(float(L))
            worst = max(worst, check_dim_prior(loss_fn, y.detach(), u64, loss_fn.parts[1]))
            expected = adam_update_lr([p.detach() for p in params],
                                      [p.grad.detach() for p in params], m, v, t, DIM_LR)
            opt.step()
            for p, e in zip(params, expected):
                assert torch.allclose(p.detach(), e, rtol=1e-14, atol=1e-17), (p.detach() - e).abs().max()

    tensors = [("x", x), ("u", u)] + init
    tensors.append(("losses", torch.tensor(losses, dtype=F64)))
    for name, val in full_state(backbone, loss_fn, "loss_fn", with_nbt=False):
        assert val.dtype == F64, name
        tensors.append(("final." + name, val.detach()))
    md = base_metadata("dim", model, B, seed, OrderedDict([
        ("steps", steps), ("optimizer", "adam"), ("lr", "1e-4"), ("beta1", "0.9"),
        ("beta2", "0.999"), ("eps", "1e-8"), ("weight_decay", "0"), ("side", str(DIM_ADAM_SIDE))]))
    fname = stem + ".safetensors"
    size = mg.write_safetensors(os.path.join(OUT_DIR, fname), tensors, md)
    return fname, size, losses, worst


# =========================================================================
# 7. main
# =========================================================================

def self_checks():
    check_rot90()
    check_constant()
    # the reference's partner rule on the interleaved order is i +- 1, and
    # the interleaving maps it to rrc's (i + B) mod 2B
    for B in (2, 3, 4):
        perm = interleave_perm(B)
        for j in range(2 * B):
            partner = j + 1 if j % 2 == 0 else j - 1
            assert int(perm[partner]) == (int(perm[j]) + B) % (2 * B)
    h = list(simclr_head(64).state_dict().keys())
    assert h == ["linear1.weight", "linear1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                 "bn1.running_var", "bn1.num_batches_tracked", "linear2.weight", "linear2.bias"], h
    assert isinstance(simclr_head(64).relu, nn.LeakyReLU) and simclr_head(64).relu.negative_slope == 0.01
    h = list(deepcluster_head(64).state_dict().keys())
    assert h == ["linear1.weight", "linear1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                 "bn1.running_var", "bn1.num_batches_tracked", "linear2.weight", "linear2.bias"], h
    dc = deepcluster_head(64)
    assert isinstance(dc.relu, nn.LeakyReLU) and dc.relu.negative_slope == 0.01
    assert dc.linear2.out_features == N_CLUSTERS
    # w_c = 1 - n_c/N (not inverse frequency): counts 2, 1, 0, 1 of N = 4
    w = deepcluster_weights(torch.tensor([0, 1, 0, 3]), 4)
    assert w.dtype == torch.float32 and w.tolist() == [0.5, 0.75, 1.0, 0.75], w
    # DIM: the checkpoint names of loss_fn and their shapes (alpha = 0: no global_d)
    for model in ("conv4", "resnet8"):
        lf = DeepInfoMaxLoss(64, DIM_M_CHANNELS[model])
        cm = DIM_M_CHANNELS[model] + 64
        shapes = [(k, tuple(v.shape)) for k, v in lf.state_dict().items()]
        assert shapes == [("local_d.c0.weight", (256, cm, 1, 1)), ("local_d.c0.bias", (256,)),
                          ("local_d.c1.weight", (256, 256, 1, 1)), ("local_d.c1.bias", (256,)),
                          ("local_d.c2.weight", (1, 256, 1, 1)), ("local_d.c2.bias", (1,)),
                          ("prior_d.l0.weight", (512, 64)), ("prior_d.l0.bias", (512,)),
                          ("prior_d.l1.weight", (128, 512)), ("prior_d.l1.bias", (128,)),
                          ("prior_d.l2.weight", (1, 128)), ("prior_d.l2.bias", (1,))], shapes
        assert isinstance(dict(mg.make_backbone(model).named_modules())[DIM_M_TAP[model]], nn.ReLU)
    # the reference's roll, cat([M[1:], M[0].unsqueeze(0)]), is torch.roll by -1
    t = torch.arange(24.).view(4, 6)
    assert torch.equal(torch.cat([t[1:], t[0].unsqueeze(0)], 0), torch.roll(t, -1, 0))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    self_checks()
    made, total = set(), 0
    for method, cases in (("rotation", ROTATION_CASES), ("simclr", SIMCLR_CASES),
                          ("deepcluster", DEEPCLUSTER_CASES)):
        for idx, (model, B, seed) in enumerate(cases):
            fname, size, L, ch = run_step_case(method, idx, model, B, seed)
            made.add(fname)
            total += size
            extra = "".join("  %s %.1e" % kv for kv in ch.items())
            print("baselines/%-36s %8d bytes  loss %.12f%s" % (fname, size, L, extra))
    for case in ADAM_CASES:
        fname, size, losses = run_adam_case(*case)
        made.add(fname)
        total += size
        print("baselines/%-36s %8d bytes  losses %.6f -> %.6f" % (fname, size, losses[0], losses[-1]))
    for idx, (model, B, seed) in enumerate(DIM_CASES):
        fname, size, L, ch = run_dim_step_case(idx, model, B, seed)
        made.add(fname)
        total += size
        extra = "".join("  %s %.1e" % kv if isinstance(kv[1], float) else "  %s %d" % kv
                        for kv in ch.items())
        print("baselines/%-36s %8d bytes  loss %.12f%s" % (fname, size, L, extra))
    fname, size, losses, worst = run_dim_adam_case(*DIM_ADAM_CASE)
    made.add(fname)
    total += size
    print("baselines/%-36s %8d bytes  losses %.6f -> %.6f  prior_rel %.1e"
          % (fname, size, losses[0], losses[-1], worst))
    mg.clean_stale(OUT_DIR, made)
    print("%d files, %d bytes (%.2f MB), torch %s" % (len(made), total, total / 1e6, torch.__version__))


if __name__ == "__main__":
    main()
