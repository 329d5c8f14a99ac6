"""Gradient centralization and clipping: cost next to an optimizer step, ours vs the
anchors.

Parameter sets: ResNet-18-sized (18 weight tensors, ~11M parameters), transformer-like
(96 tensors, ~9.5M) and the mnist1d MLP 128-64 (6 tensors, 14k: per-call work
dominates). For each: SGD-momentum and AdamW step alone, our ``centralize_``, the same
on the flat gradient buffer (``FlatGradients.centralize_``, one compiled pass), the
plain per-tensor loop (mean over dims 1.., then ``sub_``) and pytorch-optimizer's
``centralize_gradient`` where it is installed; then clipping: torch's
``clip_grad_norm_``, our ``clip_grads_`` and ``FlatGradients.clip_`` (a norm under the
limit: ours skip the multiply by 1, torch does it). Medians over many
repetitions, ratios from the same run. Then a full forward + backward + step of a small
CNN with and without ``Centralized``.

Run: ``.venv/bin/python benchmarks/centralize.py [--repeats 40]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from bagoftricks import Centralized, FlatGradients, centralize_
from bagoftricks.centralize import clip_grads_

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import median_time  # noqa: E402


def resnet18_shapes() -> list[tuple]:
    shapes = [(64, 3, 7, 7)] + [(64, 64, 3, 3)] * 4
    for c_in, c in ((64, 128), (128, 256), (256, 512)):
        shapes += [(c, c_in, 3, 3)] + [(c, c, 3, 3)] * 3
    return shapes + [(1000, 512)]


def transformer_shapes(d: int = 256, layers: int = 12) -> list[tuple]:
    per_layer = [(d, d)] * 4 + [(4 * d, d), (d, 4 * d), (d,), (d,)]
    return per_layer * layers


def make_params(shapes) -> list[torch.Tensor]:
    params = [torch.randn(s, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape)
    return params


def per_tensor_loop(params) -> None:
    for p in params:
        g = p.grad
        if g is not None and g.ndim > 1:
            g.sub_(g.mean(dim=tuple(range(1, g.ndim)), keepdim=True))


def anchors() -> dict:
    out = {"per-tensor loop": per_tensor_loop}
    try:
        from pytorch_optimizer.optimizer.gradient_centralization import centralize_gradient
    except ImportError:
        print("pytorch-optimizer not installed: its GC is left out (make bench installs it)")
        return out

    def pytorch_optimizer_gc(params):
        for p in params:
            if p.grad is not None:
                centralize_gradient(p.grad)

    def pytorch_optimizer_gc_batched(params):
        centralize_gradient([p.grad for p in params if p.grad is not None])
    out["pytorch-optimizer GC"] = pytorch_optimizer_gc
    out["pytorch-optimizer GC (list, stacked)"] = pytorch_optimizer_gc_batched
    return out


def mlp_shapes() -> list[tuple]:
    return [(128, 40), (128,), (64, 128), (64,), (10, 64), (10,)]


def param_set_table(name: str, shapes, repeats: int) -> None:
    params = make_params(shapes)
    flat = FlatGradients(params)
    flat.buffer()  # every gradient now a view of the buffer (the others work on them too)
    n = sum(p.numel() for p in params)
    sgd = torch.optim.SGD(params, lr=1e-6, momentum=0.9)
    adamw = torch.optim.AdamW(params, lr=1e-6)
    fns = {"SGD-momentum step": sgd.step, "AdamW step": adamw.step,
           "ours: centralize_": lambda: centralize_(params),
           "ours: FlatGradients.centralize_": flat.centralize_}
    fns.update({k: (lambda f=f: f(params)) for k, f in anchors().items()})
    grads = [p.grad for p in params]
    fns.update({"clipping: torch's clip_grad_norm_": lambda: clip_grad_norm_(params, 1e9),
                "clipping: ours, clip_grads_": lambda: clip_grads_(grads, 1e9),
                "clipping: ours, FlatGradients.clip_": lambda: flat.clip_(1e9)})
    for fn in fns.values():  # warm up (optimizer state, allocator, compilation)
        fn()
    times = {k: [] for k in fns}
    flush = torch.empty(64 * 2**20 // 4)  # larger than the caches
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeats):  # interleaved in a shuffled order, each from cold caches,
        rng.shuffle(order)    # so neither machine noise nor cache state favours one
        for k in order:
            flush.fill_(1.0)
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{name}: {len(shapes)} tensors, {n / 1e6:.2f}M parameters, {repeats} repeats")
    print(f"{'method':40s} {'median ms':>10s} {'x SGD step':>11s} {'x AdamW step':>13s} "
          f"{'x ours':>7s}")
    for k, t in med.items():
        print(f"{k:40s} {t * 1e3:10.3f} {t / med['SGD-momentum step']:11.3f} "
              f"{t / med['AdamW step']:13.3f} {t / med['ours: centralize_']:7.2f}")


def small_cnn_step(repeats: int) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    plain, gc = build(), build()
    opts = {"plain SGD": torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9),
            "Centralized(SGD)": Centralized(torch.optim.SGD(gc.parameters(), lr=0.01,
                                                            momentum=0.9))}
    models = {"plain SGD": plain, "Centralized(SGD)": gc}

    def step(name):
        opt, model = opts[name], models[name]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    med = {k: median_time(lambda k=k: step(k), repeats)[0] for k in opts}
    gc_only = median_time(lambda: opts["Centralized(SGD)"].centralize(), repeats)[0]
    print(f"\nsmall CNN (2 conv + 2 linear, batch 64 of 3x32x32), full step, {repeats} repeats")
    for k, t in med.items():
        print(f"{k:40s} {t * 1e3:10.2f} ms")
    print(f"centralization alone: {gc_only * 1e3:.3f} ms = "
          f"{100 * gc_only / med['plain SGD']:.2f}% of a full training step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; no GPU here")
    param_set_table("ResNet-18-sized", resnet18_shapes(), args.repeats)
    param_set_table("transformer-like", transformer_shapes(), args.repeats)
    param_set_table("mnist1d MLP 128-64", mlp_shapes(), 10 * args.repeats)
    small_cnn_step(args.repeats)


if __name__ == "__main__":
    main()
