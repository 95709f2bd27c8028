"""tools/refgen/refs_common.py: what the reference families share (make_refs.py runs them): the
family registry, the error measures and the Writer of cases.

What a case stores: make_refs.py's docstring.
"""
import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

FAMILIES = {}


def family(fn):
    FAMILIES[fn.__name__] = fn
    return fn


def rel_error(got, want):
    """The tests' measure: max |got - want| / max(|want|, 1e-3 max|want|)."""
    got, want = got.detach().double(), want.detach().double()
    top = want.abs().max().item() if want.numel() else 0.0
    if top == 0.0:
        return 0.0 if torch.equal(got, want) else float("inf")
    return ((got - want).abs() / want.abs().clamp(min=1e-3 * top)).max().item()


def norm_error(got, want):
    """||got - want|| / ||want|| over a tensor (0 when both are zero)."""
    got, want = got.detach().double(), want.detach().double()
    den = want.norm().item()
    num = (got - want).norm().item()
    return 0.0 if num == 0.0 else (num / den if den > 0 else float("inf"))


class Writer:
    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = {}
        self.meta = {}

    def randn(self, *shape, away_from_zero=0.0):
        x = torch.randn(*shape, generator=self.gen, dtype=torch.float32)
        if away_from_zero:
            x = torch.sign(x) * (x.abs() + away_from_zero)
        return x

    def case(self, name, op, inputs, fn, grads=None, **params):
        """inputs: list of (name, float32 tensor); fn(*float64 tensors) -> output tensor.
        grads: names of the inputs that take a gradient (default: all)."""
        names = [n for n, _ in inputs]
        grads = names if grads is None else grads
        args = []
        for n, v in inputs:
            a = v.detach().to(torch.float64).clone()
            a.requires_grad_(n in grads)
            args.append(a)
        out = fn(*args)
        dy = self.randn(*out.shape).to(torch.float64)
        if grads:
            (out * dy).sum().backward()
        for (n, v), a in zip(inputs, args):
            self.tensors[f"{name}.in.{n}"] = v
            if n in grads:
                self.tensors[f"{name}.grad.{n}"] = a.grad.to(torch.float32)
        self.tensors[f"{name}.out"] = out.detach().to(torch.float32)
        self.tensors[f"{name}.dy"] = dy.to(torch.float32)
        # PyTorch's own float32 error on this case, by the tests' measure: where the math is
        # ill-conditioned (attention gradients) even PyTorch misses 1e-4, and the tests hold
        # ldmcl to at most twice PyTorch's float32 error there.
        args32 = [v.detach().clone().requires_grad_(n in grads) for n, v in inputs]
        out32 = fn(*args32)
        if grads:
            (out32 * dy.to(torch.float32)).sum().backward()
        grad_err = max([rel_error(a32.grad, a.grad) for (n, _), a32, a in zip(inputs, args32, args)
                        if n in grads] or [0.0])
        self.meta[name] = json.dumps({"op": op, "inputs": names, "grads": grads,
                                      "torch_fp32_out_err": rel_error(out32, out),
                                      "torch_fp32_grad_err": grad_err, **params})

    def save(self, path):
        st.write(path, {k: v.numpy() for k, v in self.tensors.items()}, self.meta)
        print(f"{path}: {len(self.meta)} cases, {os.path.getsize(path)} bytes")

    def save_each(self, out_dir):
        """One file per case, out_dir/<case>.safetensors (references kept under 1 MiB each)."""
        for name in self.meta:
            path = os.path.join(out_dir, name + ".safetensors")
            mine = {k: v.numpy() for k, v in self.tensors.items() if k.startswith(name + ".")}
            st.write(path, mine, {name: self.meta[name]})
            print(f"{path}: {os.path.getsize(path)} bytes")
