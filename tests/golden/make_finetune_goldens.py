#!/usr/bin/python3
"""PyTorch golden of fine-tuning's optimizer -> finetune/adam_groups.safetensors.

BASELINES.md section 7: torch.optim.Adam with two parameter groups, the
backbone's (lr 1e-3) and the new classifier's (lr 1e-4), weight decay 1e-5
on both. The file holds the initial parameters (float32, as the runtime
keeps them), the gradient of every step (gNAME.T) and the parameters after
it (pNAME.T), for 6 steps; metadata: the lrs, weight decay and step count.
tests/runtime/test_finetune.c applies rt_adam_update with the lr rt_finetune_lr
picks for each parameter's name and compares. Run by `make goldens`.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import write_safetensors  # noqa: E402

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune")
STEPS = 6


def main():
    torch.set_num_threads(1)
    os.makedirs(DIR, exist_ok=True)
    gen = torch.Generator().manual_seed(4242)
    shapes = {"conv1.weight": (4, 3, 3, 3), "bn1.bias": (4,), "classifier.weight": (10, 4), "classifier.bias": (10,)}
    params = {n: torch.nn.Parameter(torch.rand(*s, generator=gen) * 2 - 1) for n, s in shapes.items()}
    backbone = [p for n, p in params.items() if not n.startswith("classifier.")]
    head = [p for n, p in params.items() if n.startswith("classifier.")]
    lr_b, lr_h, wd = 1e-3, 1e-4, 1e-5
    opt = torch.optim.Adam([{"params": backbone, "lr": lr_b}, {"params": head, "lr": lr_h}], weight_decay=wd)
    tensors = [(n, p.detach().clone()) for n, p in params.items()]
    for t in range(1, STEPS + 1):
        for n, p in params.items():
            # gradients of very different sizes, so the lrs and the decay matter
            p.grad = (torch.rand(*p.shape, generator=gen) * 2 - 1) * (10.0 ** (t % 3 - 1))
            tensors.append(("g%s.%d" % (n, t), p.grad.clone()))
        opt.step()
        for n, p in params.items():
            tensors.append(("p%s.%d" % (n, t), p.detach().clone()))
    meta = {"lr_backbone": repr(lr_b), "lr_classifier": repr(lr_h), "weight_decay": repr(wd), "steps": str(STEPS),
            "names": ",".join(shapes)}
    size = write_safetensors(os.path.join(DIR, "adam_groups.safetensors"), tensors, meta)
    print("finetune/adam_groups %d bytes" % size)


if __name__ == "__main__":
    main()
