#!/usr/bin/python3
"""PyTorch goldens of the math ops (compiler/ir/ops_math.c) -> math/<case>.

Each file holds an op's inputs a (and b), an upstream gradient dy, the
output y and the gradients grad_a (and grad_b) that torch.autograd gives,
computed in float64 from float32 inputs and stored as float32; metadata
"op" and the op's attributes. tests/ir/test_golden_math.c builds the same op
with the IR's builders and compares the interpreter's forward and backward
rule with them. Run by `make goldens` (needs Debian's python3-torch).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import write_safetensors  # noqa: E402

MATH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "math")


def rand(gen, shape, lo, hi):
    """uniform in [lo, hi), float32-exact, as float64"""
    t = torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    return t.to(torch.float32).to(torch.float64)


def case(name, seed, op, fn, shapes, ranges, meta=None):
    gen = torch.Generator().manual_seed(seed)
    ins = [rand(gen, s, *r).requires_grad_(True) for s, r in zip(shapes, ranges)]
    y = fn(*ins)
    dy = rand(gen, y.shape, -1, 1)
    grads = torch.autograd.grad(y, ins, dy)
    tensors = [(n, t.detach().float()) for n, t in zip("ab", ins)]
    tensors += [("dy", dy.float()), ("y", y.detach().float())]
    tensors += [("grad_" + n, g.float()) for n, g in zip("ab", grads)]
    md = {"op": op}
    md.update(meta or {})
    path = os.path.join(MATH_DIR, name + ".safetensors")
    return name, write_safetensors(path, tensors, md)


def cases():
    u = (-1.0, 1.0)
    yield case("mul", 3001, "mul", torch.mul, [(5, 7), (5, 7)], [u, u])
    yield case("exp", 3002, "exp", torch.exp, [(4, 9)], [(-4.0, 4.0)])
    yield case("log", 3003, "log", torch.log, [(4, 9)], [(1e-3, 20.0)])
    # both sides of softplus's threshold (20)
    yield case("softplus", 3004, "softplus", F.softplus, [(6, 11)], [(-30.0, 30.0)])
    yield case("l2_normalize", 3005, "l2_normalize", lambda x: F.normalize(x, dim=1, eps=1e-12), [(8, 16)], [u],
               {"eps": "1e-12"})
    # rows below eps: the clamped denominator
    yield case("l2_normalize_eps", 3006, "l2_normalize", lambda x: F.normalize(x, dim=1, eps=3.0), [(5, 4)], [u],
               {"eps": "3"})
    for ta in (0, 1):
        for tb in (0, 1):
            M, N, K = 5, 6, 7
            sa = (K, M) if ta else (M, K)
            sb = (N, K) if tb else (K, N)
            fn = (lambda ta_, tb_: lambda a, b: (a.t() if ta_ else a) @ (b.t() if tb_ else b))(ta, tb)
            yield case("matmul_ta%d_tb%d" % (ta, tb), 3010 + 2 * ta + tb, "matmul", fn, [sa, sb], [u, u],
                       {"ta": str(ta), "tb": str(tb)})
    # SimCLR's similarity of normalised projections: z z^T, one operand twice
    yield case("matmul_self", 3020, "matmul_self", lambda a: a @ a.t(), [(6, 4)], [u])


def main():
    torch.set_num_threads(1)
    os.makedirs(MATH_DIR, exist_ok=True)
    made = set()
    for name, size in cases():
        made.add(name + ".safetensors")
        print("math/%-30s %6d bytes" % (name, size))
    for f in os.listdir(MATH_DIR):
        if f.endswith(".safetensors") and f not in made:
            os.remove(os.path.join(MATH_DIR, f))


if __name__ == "__main__":
    main()
