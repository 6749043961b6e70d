#!/usr/bin/python3
# make_goldens.py: PyTorch reference goldens for rrc.
#
# Re-implements /work/shared/METHOD.md (self-supervised relational reasoning,
# Patacchiola & Storkey 2020) in PyTorch, computes everything in float64 and
# writes safetensors files under tests/golden/{steps,ops}/ (see README.md
# next to this script for what every file holds).
#
#   run with:  /usr/bin/python3 tests/golden/make_goldens.py   (= `make goldens`)
#   needs:     Debian's python3-torch (written against torch 1.13) and numpy.
#
# Layout of this script:
#   1. safetensors writer (Debian has no `safetensors` package)
#   2. the method: backbones (Conv-4, CIFAR ResNet-6n+2), relation head,
#      pair building, aggregations, focal loss / BCE, Adam check
#   3. parameter initialisation (METHOD.md init + golden perturbation)
#   4. A) one-step goldens            -> steps/<model>_B<B>_K<K>_<agg>_<loss>
#   5. B) 10-step Adam goldens        -> steps/<model>_adam10
#   6. C) single-layer goldens        -> ops/<case>
#   7. main: writes everything, removes stale goldens, prints a summary
#
# Determinism: one thread, torch.manual_seed(seed) at the start of every
# case, fixed case order inside a case; no dict iteration over unordered
# data. Re-running produces byte-identical files (with the same torch).
#
# Every tensor stored as F32 is exactly what the float64 computation used
# (values generated in float32 and converted with .double()).

import json
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS_DIR = os.path.join(HERE, "steps")
OPS_DIR = os.path.join(HERE, "ops")

GAMMA = 2.0
ALPHA = 0.5
HIDDEN = 256
SLOPE = 0.01
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
ADAM_LR = 1e-3
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

F64 = torch.float64


# =========================================================================
# 1. safetensors writer
# =========================================================================

_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in file order; metadata: {str: str}.

    8-byte little-endian u64 header length N, N bytes of JSON header
    (padded with spaces to a multiple of 8), then the raw little-endian
    data of every tensor, contiguous, in header order."""
    assert sys.byteorder == "little"
    header = OrderedDict()
    header["__metadata__"] = OrderedDict((str(k), str(v)) for k, v in metadata.items())
    blobs = []
    offset = 0
    for name, t in tensors:
        assert name not in header and name != "__metadata__", name
        t = t.detach().cpu().contiguous()
        assert t.dtype in _DTYPES, (name, t.dtype)
        data = t.numpy().tobytes()
        header[name] = OrderedDict([
            ("dtype", _DTYPES[t.dtype]),
            ("shape", list(t.shape)),
            ("data_offsets", [offset, offset + len(data)]),
        ])
        blobs.append(data)
        offset += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(len(hj).to_bytes(8, "little"))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return os.path.getsize(path)


def f32(t):
    """A float32 copy (asserting the value is exactly float32)."""
    out = t.detach().to(torch.float32)
    assert torch.equal(out.double(), t.detach().double()), "value not float32-exact"
    return out


# =========================================================================
# 2. the method
# =========================================================================

class Conv4(nn.Module):
    """Conv-4: 4 x [conv3x3 (no bias) -> BN -> ReLU -> pool], 3->8->16->32->64."""

    def __init__(self):
        super().__init__()
        chans = [3, 8, 16, 32, 64]
        for i in range(4):
            pool = nn.AvgPool2d(kernel_size=2, stride=2) if i < 3 else nn.AdaptiveAvgPool2d(1)
            block = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(chans[i], chans[i + 1], kernel_size=3, stride=1, padding=1, bias=False)),
                ("bn", nn.BatchNorm2d(chans[i + 1])),
                ("relu", nn.ReLU()),
                ("pool", pool),
            ]))
            setattr(self, "layer%d" % (i + 1), block)
        self.fdim = 64

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(x, 1)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                nn.BatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.downsample is None else self.downsample(x)
        return self.relu(out + sc)


class ResNetCifar(nn.Module):
    """CIFAR ResNet-(6n+2): stem conv3x3 3->16, 3 stages of n BasicBlocks
    (16/32/64, stride 2 at the start of stages 2, 3), global average pool."""

    def __init__(self, depth):
        super().__init__()
        assert (depth - 2) % 6 == 0
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        cin = 16
        for li, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            setattr(self, "layer%d" % (li + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fdim = 64

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.avgpool(x), 1)


class RelationHead(nn.Module):
    """Linear(aggdim->256) -> BatchNorm1d(256) -> LeakyReLU(0.01) -> Linear(256->1)."""

    def __init__(self, aggdim):
        super().__init__()
        self.linear1 = nn.Linear(aggdim, HIDDEN, bias=True)
        self.bn1 = nn.BatchNorm1d(HIDDEN)
        self.act = nn.LeakyReLU(SLOPE)
        self.linear2 = nn.Linear(HIDDEN, 1, bias=True)

    def forward(self, x):
        return self.linear2(self.act(self.bn1(self.linear1(x)))).squeeze(1)


def make_backbone(model):
    if model == "conv4":
        return Conv4()
    if model.startswith("resnet"):
        return ResNetCifar(int(model[len("resnet"):]))
    raise ValueError(model)


def aggregate(a, b, agg):
    if agg == "cat":
        return torch.cat([a, b], 1)
    if agg == "sum":
        return a + b
    if agg == "mean":
        return (a + b) / 2.0
    if agg == "max":
        return torch.max(a, b)      # elementwise = torch.maximum (ties: grad/2 to each)
    raise ValueError(agg)


def agg_dim(fdim, agg):
    return 2 * fdim if agg == "cat" else fdim


def make_pairs(feats, B, K, agg):
    """METHOD.md step 3: augmentation-major rows k*B+i; roll-shift-reset rule."""
    assert feats.shape[0] == K * B
    rows, targets = [], []
    s = 1
    for k1 in range(K):
        for k2 in range(k1 + 1, K):
            a = feats[k1 * B:(k1 + 1) * B]
            b = feats[k2 * B:(k2 + 1) * B]
            b_neg = torch.roll(b, shifts=s, dims=0)
            # torch.roll by s: row i of the result is row (i - s) mod B
            idx = torch.tensor([(i - s) % B for i in range(B)], dtype=torch.long)
            assert torch.equal(b_neg, b[idx])
            rows.append(aggregate(a, b, agg))
            targets.append(torch.ones(B, dtype=feats.dtype))
            rows.append(aggregate(a, b_neg, agg))
            targets.append(torch.zeros(B, dtype=feats.dtype))
            s += 1
            if s >= B:
                s = 1
    pairs = torch.cat(rows, 0)
    y = torch.cat(targets, 0)
    assert pairs.shape[0] == B * K * (K - 1)
    return pairs, y


def focal_loss(z, y, gamma=GAMMA, alpha=ALPHA):
    """METHOD.md step 5, written out; mean over pairs. The per-pair BCE term
    max(z,0) - z*y + log(1+exp(-|z|)) is computed by
    binary_cross_entropy_with_logits (same value; its derivative is the exact
    sigmoid(z) - y, also at z == 0 where autograd of |z| would give 0)."""
    p = torch.sigmoid(z)
    p_t = y * p + (1 - y) * (1 - p)
    a_t = y * alpha + (1 - y) * (1 - alpha)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    bce_formula = torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))
    # torch evaluates log(exp(0) + exp(-|z|)) rather than log1p: equal to
    # ~1e-16 absolute (relative error grows only where bce itself is tiny)
    assert torch.allclose(bce.detach(), bce_formula.detach(), rtol=1e-13, atol=1e-15)
    return (a_t * (1 - p_t) ** gamma * bce).mean()


def focal_grad_closed(z, y, gamma=GAMMA, alpha=ALPHA):
    """METHOD.md's closed form of dloss/dz, divided by P (mean)."""
    z = z.detach()
    p = torch.sigmoid(z)
    q = torch.sigmoid(-z)             # 1 - p, accurately
    lnp = F.logsigmoid(z)             # ln p
    lnq = F.logsigmoid(-z)            # ln(1 - p)
    g1 = alpha * q ** gamma * (gamma * p * lnp - q)
    g0 = (1 - alpha) * p ** gamma * (p - gamma * q * lnq)
    return torch.where(y == 1, g1, g0) / z.numel()


def bce_loss(z, y):
    return F.binary_cross_entropy_with_logits(z, y)


def loss_fn(name):
    return {"focal": focal_loss, "bce": bce_loss}[name]


def check_focal_grad(z, y, dy=1.0):
    """Asserts autograd of focal_loss == METHOD.md closed form."""
    zz = z.detach().clone().requires_grad_(True)
    L = focal_loss(zz, y)
    (g,) = torch.autograd.grad(L * dy, zz)
    ref = focal_grad_closed(z, y) * dy
    assert torch.allclose(g, ref, rtol=1e-10, atol=1e-300), (g - ref).abs().max()


def metrics(z, y):
    """Step 7: round(sigmoid(z)) == y with round(0.5) = 0 (i.e. pred = z > 0)."""
    pred = (torch.sigmoid(z.detach()) > 0.5).to(y.dtype)
    ok = (pred == y).to(F64)
    pos, neg = y == 1, y == 0
    return ok.mean(), ok[pos].mean(), ok[neg].mean()


def adam_reference_update(params, grads, m, v, t):
    """METHOD.md step 6, written out (returns new params, updates m, v in place)."""
    b1, b2 = ADAM_BETAS
    new = []
    for p, g, mi, vi in zip(params, grads, m, v):
        mi.mul_(b1).add_((1 - b1) * g)
        vi.mul_(b2).add_((1 - b2) * g * g)
        denom = vi.sqrt() / math.sqrt(1 - b2 ** t) + ADAM_EPS
        new.append(p - (ADAM_LR / (1 - b1 ** t)) * mi / denom)
    return new


# =========================================================================
# 3. initialisation
# =========================================================================

def init_module(module):
    """METHOD.md init (conv He-normal fan_out; Linear PyTorch default, already
    done at construction), then the golden perturbation of every BatchNorm:
    weight ~ U(0.5,1.5), bias ~ U(-0.5,0.5), running_mean ~ U(-0.2,0.2),
    running_var ~ U(0.5,1.5). All in float32, in module order."""
    for mod in module.modules():
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            with torch.no_grad():
                mod.weight.normal_(0.0, math.sqrt(2.0 / (k * mod.out_channels)))
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert mod.eps == BN_EPS and mod.momentum == BN_MOMENTUM
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)


def build_models(model, agg, seed):
    """Seeds, builds backbone + head in float32, initialises; returns
    (backbone, head) still in float32."""
    torch.manual_seed(seed)
    backbone = make_backbone(model)
    head = RelationHead(agg_dim(backbone.fdim, agg))
    init_module(backbone)
    init_module(head)
    return backbone, head


def full_state(backbone, head, with_nbt=True):
    """[(full name, tensor)] in state-dict order, prefixed backbone./relation."""
    out = []
    for prefix, mod in (("backbone.", backbone), ("relation.", head)):
        for k, v in mod.state_dict().items():
            if k.endswith("num_batches_tracked") and not with_nbt:
                continue
            out.append((prefix + k, v))
    return out


def named_params(backbone, head):
    return [("backbone." + k, v) for k, v in backbone.named_parameters()] + \
           [("relation." + k, v) for k, v in head.named_parameters()]


def running_stats(backbone, head):
    return [(k, v) for k, v in full_state(backbone, head, with_nbt=False)
            if k.endswith("running_mean") or k.endswith("running_var")]


def initial_tensors(backbone, head, with_nbt):
    """The float32 parameters/buffers (+ num_batches_tracked I64 [] if asked)."""
    out = []
    for k, v in full_state(backbone, head, with_nbt=with_nbt):
        if k.endswith("num_batches_tracked"):
            out.append((k, v.detach().clone().to(torch.int64).reshape([])))
        else:
            assert v.dtype == torch.float32
            out.append((k, v.detach().clone()))
    return out


def n_trainable(mod):
    return sum(p.numel() for p in mod.parameters())


# =========================================================================
# 4. A) one training step, no update
# =========================================================================

STEP_CASES = [
    # (model, B, K, aggregation, loss, seed)
    ("conv4", 2, 2, "cat", "focal", 101),
    ("conv4", 3, 3, "cat", "focal", 102),
    ("conv4", 5, 2, "cat", "bce", 103),
    ("conv4", 8, 4, "cat", "focal", 104),
    ("conv4", 2, 3, "sum", "focal", 107),
    ("conv4", 5, 3, "sum", "bce", 108),
    ("conv4", 3, 4, "mean", "focal", 110),
    ("conv4", 8, 2, "mean", "focal", 111),
    ("conv4", 2, 2, "mean", "bce", 112),
    ("conv4", 2, 4, "max", "focal", 113),
    ("conv4", 5, 3, "max", "focal", 114),
    ("conv4", 3, 2, "max", "bce", 115),
    ("conv4", 8, 3, "max", "focal", 116),
    ("resnet8", 2, 2, "cat", "focal", 201),
    ("resnet8", 3, 3, "max", "bce", 202),
    ("resnet8", 4, 2, "sum", "focal", 203),
    ("resnet8", 5, 4, "mean", "focal", 204),
    ("resnet8", 2, 3, "cat", "bce", 205),
    ("resnet32", 2, 2, "cat", "focal", 301),
]


def step_metadata(model, B, K, agg, loss, seed, extra=None):
    md = OrderedDict([
        ("model", model), ("B", B), ("K", K), ("aggregation", agg), ("loss", loss),
        ("gamma", "2"), ("alpha", "0.5"), ("hidden", str(HIDDEN)), ("slope", "0.01"),
        ("seed", seed), ("bn_eps", "1e-5"), ("bn_momentum", "0.1"),
        ("P", B * K * (K - 1)), ("torch", torch.__version__),
    ])
    if extra:
        md.update(extra)
    return md


# Kinks. An f32 implementation computes every ReLU / LeakyReLU input with
# an error of about 1e-7 of its scale (more deep in a ResNet); an input that
# close to 0 may take the other branch there, which changes a gradient by far
# more than the comparison tolerance (seen: a BatchNorm output of 2e-7 in
# resnet32's layer2.0.bn1 flipped its ReLU in float32). Step cases redraw
# their views until every such input is at least KINK_MARGIN from the kink.
KINK_MARGIN = 2e-6


def kink_margin(backbone, head, x, B, K, agg):
    """min |input| of every ReLU and LeakyReLU of one float64 training-mode
    step on x (on copies: the models' running statistics stay as they are)."""
    import copy
    bb, hd = copy.deepcopy(backbone).double().train(), copy.deepcopy(head).double().train()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().abs().min().item()))
             for mod in (bb, hd) for m in mod.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    with torch.no_grad():
        pairs, _ = make_pairs(bb(x.double()), B, K, agg)
        hd(pairs)
    for h in hooks:
        h.remove()
    return min(seen)


def run_step_case(idx, model, B, K, agg, loss, seed):
    backbone, head = build_models(model, agg, seed)
    x = torch.randn(K * B, 3, 32, 32, dtype=torch.float32)
    for _ in range(200):
        if kink_margin(backbone, head, x, B, K, agg) >= KINK_MARGIN:
            break
        x = torch.randn(K * B, 3, 32, 32, dtype=torch.float32)
    else:
        raise RuntimeError("no views without a near-kink ReLU input in 200 draws")
    with_nbt = idx % 2 == 1
    init = initial_tensors(backbone, head, with_nbt)

    backbone.double().train()
    head.double().train()
    feats = backbone(x.double())
    pairs, y = make_pairs(feats, B, K, agg)
    z = head(pairs)
    L = loss_fn(loss)(z, y)
    L.backward()
    if loss == "focal":
        check_focal_grad(z, y)
    acc, acc_pos, acc_neg = metrics(z, y)

    tensors = [("x", x)] + init
    tensors += [
        ("loss", L.detach().reshape(1)),
        ("logits", z.detach()),
        ("targets", y.detach()),
        ("features", feats.detach()),
        ("acc", acc.reshape(1)), ("acc_pos", acc_pos.reshape(1)), ("acc_neg", acc_neg.reshape(1)),
    ]
    for name, p in named_params(backbone, head):
        assert p.grad is not None and p.grad.dtype == F64, name
        tensors.append(("grad." + name, p.grad.detach()))
    for name, v in running_stats(backbone, head):
        assert v.dtype == F64
        tensors.append(("state." + name, v.detach()))
    fname = "%s_B%d_K%d_%s_%s.safetensors" % (model, B, K, agg, loss)
    md = step_metadata(model, B, K, agg, loss, seed,
                       {"num_batches_tracked": "1" if with_nbt else "0"})
    size = write_safetensors(os.path.join(STEPS_DIR, fname), tensors, md)
    return fname, size, float(L)


# =========================================================================
# 5. B) 10 Adam steps
# =========================================================================

ADAM_CASES = [
    # (file stem, model, B, K, aggregation, loss, steps, seed)
    ("conv4_adam10", "conv4", 4, 3, "cat", "focal", 10, 401),
    ("resnet8_adam10", "resnet8", 2, 2, "cat", "focal", 10, 402),
]


def run_adam_case(stem, model, B, K, agg, loss, steps, seed):
    backbone, head = build_models(model, agg, seed)
    x = torch.randn(K * B, 3, 32, 32, dtype=torch.float32)
    init = initial_tensors(backbone, head, with_nbt=False)

    backbone.double().train()
    head.double().train()
    params = [p for _, p in named_params(backbone, head)]
    opt = torch.optim.Adam(params, lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS,
                           weight_decay=0, amsgrad=False)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    x64 = x.double()
    losses = []
    for t in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        feats = backbone(x64)
        pairs, y = make_pairs(feats, B, K, agg)
        z = head(pairs)
        L = loss_fn(loss)(z, y)
        L.backward()
        losses.append(float(L))
        expected = adam_reference_update([p.detach() for p in params],
                                         [p.grad.detach() for p in params], m, v, t)
        opt.step()
        for p, e in zip(params, expected):
            # METHOD.md's written-out Adam == torch.optim.Adam (to rounding)
            assert torch.allclose(p.detach(), e, rtol=1e-14, atol=1e-17), (p.detach() - e).abs().max()

    tensors = [("x", x)] + init
    tensors.append(("losses", torch.tensor(losses, dtype=F64)))
    for name, v_ in full_state(backbone, head, with_nbt=False):
        assert v_.dtype == F64
        tensors.append(("final." + name, v_.detach()))
    md = step_metadata(model, B, K, agg, loss, seed, OrderedDict([
        ("steps", steps), ("optimizer", "adam"), ("lr", "1e-3"), ("beta1", "0.9"),
        ("beta2", "0.999"), ("eps", "1e-8"), ("weight_decay", "0")]))
    size = write_safetensors(os.path.join(STEPS_DIR, stem + ".safetensors"), tensors, md)
    return stem + ".safetensors", size, losses


# =========================================================================
# 6. C) single layers
# =========================================================================
#
# Each op case: a builder called right after torch.manual_seed(seed) returns
#   (metadata, inputs [f32], params OrderedDict name->f32, buffers
#    OrderedDict name->f32, fn(inputs64, params64, buffers64) -> out64,
#    no_grad_inputs set of input indices, extra tensors fn)
# The driver draws dy ~ N(0,1) float32 of out's shape, backprops sum(out*dy).

def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def rand_u(lo, hi, *shape):
    return torch.empty(*shape, dtype=torch.float32).uniform_(lo, hi)


def with_zeros(t, frac=0.15):
    """Sets about frac of the entries to exactly 0 (ReLU-kink tests)."""
    mask = torch.rand(t.shape) < frac
    t = t.clone()
    t[mask] = 0.0
    return t


def rand_int(lo, hi, *shape):
    """Small integers as float32: many exact ties."""
    return torch.randint(lo, hi, shape).to(torch.float32)


def op_conv2d(n, cin, cout, h, w, k, s, p, bias):
    def build():
        x = randn(n, cin, h, w)
        params = OrderedDict(weight=randn(cout, cin, k, k))
        if bias:
            params["bias"] = randn(cout)
        md = OrderedDict(layer="conv2d", in_channels=cin, out_channels=cout, kernel=k,
                         stride=s, padding=p, bias=int(bias), dilation=1, groups=1)
        fn = lambda ins, ps, bs: F.conv2d(ins[0], ps["weight"], ps.get("bias"), stride=s, padding=p)
        return md, [x], params, OrderedDict(), fn
    return build


def op_linear(n, fin, fout, bias):
    def build():
        x = randn(n, fin)
        params = OrderedDict(weight=randn(fout, fin))
        if bias:
            params["bias"] = randn(fout)
        md = OrderedDict(layer="linear", in_features=fin, out_features=fout, bias=int(bias))
        fn = lambda ins, ps, bs: F.linear(ins[0], ps["weight"], ps.get("bias"))
        return md, [x], params, OrderedDict(), fn
    return build


def op_batchnorm(dim, shape):
    def build():
        c = shape[1]
        x = randn(*shape) * 2.0 + 0.5
        params = OrderedDict(weight=rand_u(0.5, 1.5, c), bias=rand_u(-0.5, 0.5, c))
        bufs = OrderedDict(running_mean=rand_u(-0.2, 0.2, c), running_var=rand_u(0.5, 1.5, c))
        md = OrderedDict(layer="batchnorm%dd" % dim, num_features=c, eps="1e-5",
                         momentum="0.1", training=1)
        fn = lambda ins, ps, bs: F.batch_norm(ins[0], bs["running_mean"], bs["running_var"],
                                              ps["weight"], ps["bias"], training=True,
                                              momentum=BN_MOMENTUM, eps=BN_EPS)
        return md, [x], params, bufs, fn
    return build


def op_relu(shape):
    def build():
        x = with_zeros(randn(*shape))
        return OrderedDict(layer="relu"), [x], OrderedDict(), OrderedDict(), \
            lambda ins, ps, bs: F.relu(ins[0])
    return build


def op_leaky_relu(shape, slope, slope_str):
    def build():
        x = with_zeros(randn(*shape))
        return OrderedDict(layer="leaky_relu", negative_slope=slope_str), [x], OrderedDict(), \
            OrderedDict(), lambda ins, ps, bs: F.leaky_relu(ins[0], slope)
    return build


def op_avgpool(shape, k, s, p, cip=True):
    def build():
        x = randn(*shape)
        md = OrderedDict(layer="avgpool2d", kernel=k, stride=s, padding=p,
                         count_include_pad=int(cip), ceil_mode=0)
        fn = lambda ins, ps, bs: F.avg_pool2d(ins[0], k, s, p, ceil_mode=False,
                                              count_include_pad=cip)
        return md, [x], OrderedDict(), OrderedDict(), fn
    return build


def op_maxpool(shape, k, s, p, ties):
    def build():
        x = rand_int(-3, 2, *shape) if ties else randn(*shape)
        md = OrderedDict(layer="maxpool2d", kernel=k, stride=s, padding=p, ceil_mode=0,
                         dilation=1, ties=int(ties))
        fn = lambda ins, ps, bs: F.max_pool2d(ins[0], k, s, p)
        return md, [x], OrderedDict(), OrderedDict(), fn
    return build


def op_global_avgpool(shape):
    def build():
        x = randn(*shape)
        md = OrderedDict(layer="global_avgpool", out_shape="[N,C]")
        return md, [x], OrderedDict(), OrderedDict(), lambda ins, ps, bs: ins[0].mean(dim=(2, 3))
    return build


def op_flatten(shape):
    def build():
        x = randn(*shape)
        return OrderedDict(layer="flatten", start_dim=1), [x], OrderedDict(), OrderedDict(), \
            lambda ins, ps, bs: torch.flatten(ins[0], 1)
    return build


def op_add(shape):
    def build():
        a, b = randn(*shape), randn(*shape)
        return OrderedDict(layer="add"), [a, b], OrderedDict(), OrderedDict(), \
            lambda ins, ps, bs: ins[0] + ins[1]
    return build


def op_pairs(K, B, agg, D, ties):
    def build():
        if ties:
            # ReLU-like features: many exact zeros and repeated small integers
            f = torch.clamp(rand_int(-2, 3, K * B, D), min=0)
        else:
            f = randn(K * B, D)
        md = OrderedDict(layer="pairs", K=K, B=B, aggregation=agg, P=B * K * (K - 1), ties=int(ties))
        fn = lambda ins, ps, bs: make_pairs(ins[0], B, K, agg)[0]
        return md, [f], OrderedDict(), OrderedDict(), fn
    return build


def loss_inputs(P, scale, n_zero):
    z = randn(P) * scale
    z[:n_zero] = 0.0
    y = torch.zeros(P, dtype=torch.float32)
    y[torch.randperm(P)[:P // 2]] = 1.0
    return z, y


def op_focal(P, scale, n_zero):
    def build():
        z, y = loss_inputs(P, scale, n_zero)
        md = OrderedDict(layer="focal", gamma="2", alpha="0.5", reduction="mean")
        fn = lambda ins, ps, bs: focal_loss(ins[0], ins[1]).reshape(1)
        return md, [z, y], OrderedDict(), OrderedDict(), fn
    return build


def op_bce(P, scale, n_zero):
    def build():
        z, y = loss_inputs(P, scale, n_zero)
        md = OrderedDict(layer="bce", reduction="mean")
        fn = lambda ins, ps, bs: bce_loss(ins[0], ins[1]).reshape(1)
        return md, [z, y], OrderedDict(), OrderedDict(), fn
    return build


OP_CASES = [
    # (case name, seed, builder)
    ("conv2d_k3s1p1_nobias", 1001, op_conv2d(2, 3, 4, 6, 6, 3, 1, 1, False)),
    ("conv2d_k3s2p1_bias", 1002, op_conv2d(2, 4, 5, 7, 7, 3, 2, 1, True)),
    ("conv2d_k1s2p0_nobias", 1003, op_conv2d(3, 4, 6, 6, 6, 1, 2, 0, False)),
    ("conv2d_k7s2p3_bias", 1004, op_conv2d(2, 3, 4, 9, 9, 7, 2, 3, True)),
    ("conv2d_k3s1p1_7x9_nobias", 1005, op_conv2d(2, 3, 5, 7, 9, 3, 1, 1, False)),
    ("conv2d_k3s2p1_7x9_bias", 1006, op_conv2d(2, 3, 4, 7, 9, 3, 2, 1, True)),
    ("conv2d_k1s2p0_7x9_nobias", 1007, op_conv2d(2, 5, 3, 7, 9, 1, 2, 0, False)),
    ("linear_bias", 1101, op_linear(4, 6, 5, True)),
    ("linear_nobias", 1102, op_linear(3, 7, 4, False)),
    ("batchnorm2d_train", 1201, op_batchnorm(2, (3, 4, 5, 5))),
    ("batchnorm2d_train_n1", 1202, op_batchnorm(2, (1, 3, 2, 3))),
    ("batchnorm1d_train", 1203, op_batchnorm(1, (6, 5))),
    ("batchnorm1d_train_n2", 1204, op_batchnorm(1, (2, 4))),
    ("relu", 1301, op_relu((2, 3, 5, 5))),
    ("leaky_relu_0.01", 1302, op_leaky_relu((2, 3, 5, 5), 0.01, "0.01")),
    ("leaky_relu_0.2", 1303, op_leaky_relu((3, 7), 0.2, "0.2")),
    ("avgpool2d_k2s2p0", 1401, op_avgpool((2, 3, 6, 6), 2, 2, 0)),
    ("avgpool2d_k2s2p0_7x9", 1402, op_avgpool((2, 3, 7, 9), 2, 2, 0)),
    ("avgpool2d_k3s2p1_cip", 1403, op_avgpool((2, 3, 7, 7), 3, 2, 1, True)),
    ("maxpool2d_k2s2p0", 1501, op_maxpool((2, 3, 6, 6), 2, 2, 0, False)),
    ("maxpool2d_k2s2p0_ties", 1502, op_maxpool((2, 3, 6, 8), 2, 2, 0, True)),
    ("maxpool2d_k3s2p1", 1503, op_maxpool((2, 3, 7, 7), 3, 2, 1, False)),
    ("maxpool2d_k3s2p1_ties", 1504, op_maxpool((2, 2, 8, 8), 3, 2, 1, True)),
    ("maxpool2d_k3s2p1_7x9_ties", 1505, op_maxpool((1, 2, 7, 9), 3, 2, 1, True)),
    ("global_avgpool", 1601, op_global_avgpool((2, 5, 4, 3))),
    ("flatten", 1602, op_flatten((2, 3, 4, 5))),
    ("add", 1603, op_add((2, 3, 5, 5))),
]
_seed = 1700
for _agg in ("cat", "sum", "mean", "max"):
    for _K, _B in ((3, 3), (4, 2), (5, 4)):
        _seed += 1
        OP_CASES.append(("pairs_K%d_B%d_%s" % (_K, _B, _agg), _seed, op_pairs(_K, _B, _agg, 5, False)))
for _K, _B in ((3, 3), (4, 2)):
    _seed += 1
    OP_CASES.append(("pairs_K%d_B%d_max_ties" % (_K, _B), _seed, op_pairs(_K, _B, "max", 5, True)))
OP_CASES += [
    ("focal", 1801, op_focal(12, 2.0, 1)),
    ("focal_wide", 1802, op_focal(24, 6.0, 2)),
    ("bce", 1803, op_bce(12, 2.0, 1)),
    ("bce_wide", 1804, op_bce(24, 6.0, 2)),
]


def run_op_case(name, seed, builder):
    torch.manual_seed(seed)
    md, inputs, params, bufs, fn = builder()
    layer = md["layer"]
    # targets of the losses are data, not differentiated
    grad_inputs = [0] if layer in ("focal", "bce") else list(range(len(inputs)))
    ins64 = [t.double().requires_grad_(i in grad_inputs) for i, t in enumerate(inputs)]
    ps64 = OrderedDict((k, v.double().requires_grad_(True)) for k, v in params.items())
    bs64 = OrderedDict((k, v.double().clone()) for k, v in bufs.items())
    out = fn(ins64, ps64, bs64)
    dy = randn(*out.shape)
    (out * dy.double()).sum().backward()
    if layer == "focal":
        check_focal_grad(ins64[0], ins64[1], float(dy[0]))

    tensors = []
    for i, t in enumerate(inputs):
        tensors.append(("in%d" % i, f32(t)))
    for k, v in params.items():
        tensors.append((k, f32(v)))
    for k, v in bufs.items():
        tensors.append((k, f32(v)))
    tensors.append(("dy", dy))
    tensors.append(("out", out.detach()))
    if layer == "pairs":
        _, y = make_pairs(ins64[0].detach(), int(md["B"]), int(md["K"]), md["aggregation"])
        tensors.append(("targets", y))
    for i in grad_inputs:
        tensors.append(("grad.in%d" % i, ins64[i].grad.detach()))
    for k, v in ps64.items():
        tensors.append(("grad." + k, v.grad.detach()))
    for k, v in bs64.items():
        tensors.append(("state." + k, v))
    md = OrderedDict((k, str(v)) for k, v in md.items())
    md["seed"] = str(seed)
    md["torch"] = torch.__version__
    fname = name + ".safetensors"
    size = write_safetensors(os.path.join(OPS_DIR, fname), tensors, md)
    return fname, size


# =========================================================================
# 7. main
# =========================================================================

def self_checks():
    # parameter counts from METHOD.md
    assert n_trainable(Conv4()) == 24648
    assert n_trainable(ResNetCifar(32)) == 466256
    # state-dict names
    c4 = list(Conv4().state_dict().keys())
    assert c4[:5] == ["layer1.conv.weight", "layer1.bn.weight", "layer1.bn.bias",
                      "layer1.bn.running_mean", "layer1.bn.running_var"], c4[:5]
    r8 = ResNetCifar(8).state_dict().keys()
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.bn2.bias",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
              "layer3.0.downsample.1.weight"):
        assert k in r8, k
    assert "layer1.0.downsample.0.weight" not in r8
    assert sum(1 for k in ResNetCifar(32).state_dict() if k.endswith("downsample.0.weight")) == 2
    h = list(RelationHead(128).state_dict().keys())
    assert h == ["linear1.weight", "linear1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                 "bn1.running_var", "bn1.num_batches_tracked", "linear2.weight", "linear2.bias"], h


def clean_stale(directory, produced):
    for f in sorted(os.listdir(directory)):
        if f.endswith(".safetensors") and f not in produced:
            os.remove(os.path.join(directory, f))
            print("removed stale %s" % f)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(STEPS_DIR, exist_ok=True)
    os.makedirs(OPS_DIR, exist_ok=True)
    self_checks()
    total = 0
    steps_made, ops_made = set(), set()

    for idx, case in enumerate(STEP_CASES):
        fname, size, L = run_step_case(idx, *case)
        steps_made.add(fname)
        total += size
        print("steps/%-40s %9d bytes  loss %.6f" % (fname, size, L))
    for case in ADAM_CASES:
        fname, size, losses = run_adam_case(*case)
        steps_made.add(fname)
        total += size
        print("steps/%-40s %9d bytes  losses %.6f -> %.6f" % (fname, size, losses[0], losses[-1]))
    for case in OP_CASES:
        fname, size = run_op_case(*case)
        ops_made.add(fname)
        total += size
        print("ops/%-42s %9d bytes" % (fname, size))

    clean_stale(STEPS_DIR, steps_made)
    clean_stale(OPS_DIR, ops_made)
    print("%d files, %d bytes (%.2f MB), torch %s" % (
        len(steps_made) + len(ops_made), total, total / 1e6, torch.__version__))


if __name__ == "__main__":
    main()
