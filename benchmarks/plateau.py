"""Plateau detection: FluctuationPlateau vs ReduceLROnPlateau on curves with a known truth.

1. Synthetic curves, 20 noise seeds each: noisy exponential decay reaching its floor at a
   known epoch; a steady noisy decline that never plateaus; a plateau followed by a
   second descent; a steady decline with heavy-tailed spikes; the chapter's alternating
   ±noise on a flat loss. A cut is *on time* when it falls within 16 epochs after a
   plateau onset, *false* when the noise-free curve fell over all of the 16 epochs
   before it.
2. Real curves: training losses recorded from an MLP on mnist1d and on digits at a
   constant LR, fed to each scheduler (cut epochs listed).
3. End to end: an MLP on mnist1d trained with a constant LR, ReduceLROnPlateau and
   FluctuationPlateau (stepped on the validation loss), 5 seeds, the same epoch budget:
   final validation loss and accuracy (mean ± std), and the LR curves as a PNG.

Run: ``.venv/bin/python benchmarks/plateau.py [--part synthetic|real|train|all]
[--png docs/plateau_lr.png]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bagoftricks import FluctuationPlateau, RunningStandardizer

WINDOW = 16


@dataclass
class Curve:
    name: str
    values: np.ndarray
    clean: np.ndarray      # the noise-free curve (the truth)
    onsets: list[int]      # epochs where a plateau starts


def synthetic(seed: int) -> list[Curve]:
    rng = np.random.default_rng(seed)
    t = np.arange(160, dtype=float)
    out = []
    # exponential decay that reaches its floor at epoch 70
    floor_at = 70
    clean = 0.5 + 2.0 * np.clip(np.exp(-t / 25) - np.exp(-floor_at / 25), 0, None)
    out.append(Curve("exp decay, floor at 70", clean + rng.normal(0, 0.02, t.size), clean,
                     [floor_at]))
    # steady decline: 0.01 per epoch under noise of 0.02 (the drop is half of sigma)
    clean = 2.0 - 0.01 * t
    out.append(Curve("steady decline", clean + rng.normal(0, 0.02, t.size), clean, []))
    # decline to 40, plateau to 80, second descent to 130, plateau again
    clean = np.interp(t, [0, 40, 80, 130, 159], [2.0, 1.2, 1.2, 0.6, 0.6])
    out.append(Curve("plateau then 2nd descent", clean + rng.normal(0, 0.02, t.size), clean,
                     [40, 130]))
    # steady decline with heavy-tailed (Student t, 2 dof) noise
    clean = 2.0 - 0.006 * t
    out.append(Curve("decline, heavy-tailed spikes",
                     clean + 0.01 * rng.standard_t(2, t.size), clean, []))
    # the chapter's example: flat loss with alternating -100, +100 (and a little noise)
    clean = np.full(t.size, 1000.0)
    alt = np.where(t % 2 == 0, -100.0, 100.0) + rng.normal(0, 5, t.size)
    out.append(Curve("alternating ±100", clean + alt, clean, [0]))
    return out


def cut_epochs(kind: str, values, **kw) -> list[int]:
    """Feed a curve, one value per epoch; the 1-based epochs where the LR dropped."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    if kind == "FluctuationPlateau":
        sched = FluctuationPlateau(opt, **kw)
    elif kind == "ReduceLROnPlateau (torch defaults)":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    else:  # Keras: factor 0.1, patience 10, min_delta 1e-4 absolute
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=10,
                                                           threshold=1e-4,
                                                           threshold_mode="abs")
    cuts, lr = [], 1.0
    for epoch, v in enumerate(values, start=1):
        sched.step(float(v))
        if opt.param_groups[0]["lr"] < lr:
            cuts.append(epoch)
            lr = opt.param_groups[0]["lr"]
    return cuts


def score(curve: Curve, cuts: list[int]) -> tuple[int, int, list[int]]:
    """(false cuts, plateaus detected on time, detection delays)."""
    falling = np.diff(curve.clean) < 0  # falling[i]: clean fell from epoch i+1 to i+2
    false = sum(1 for c in cuts if c > WINDOW and falling[c - WINDOW - 1:c - 1].all())
    delays = []
    for onset in curve.onsets:
        hit = [c - onset for c in cuts if onset <= c <= onset + WINDOW]
        if hit:
            delays.append(hit[0])
    return false, len(delays), delays


SCHEDULERS = ("FluctuationPlateau", "ReduceLROnPlateau (torch defaults)",
              "ReduceLROnPlateau (Keras style, abs)")


def synthetic_report(seeds: int = 20, **kw) -> dict:
    rows = {}
    for seed in range(seeds):
        for curve in synthetic(seed):
            for kind in SCHEDULERS:
                cuts = cut_epochs(kind, curve.values, **(kw if kind == SCHEDULERS[0] else {}))
                false, hits, delays = score(curve, cuts)
                r = rows.setdefault((curve.name, kind), {"false": 0, "hits": 0, "plateaus": 0,
                                                         "delays": [], "first": []})
                r["false"] += false
                r["hits"] += hits
                r["plateaus"] += len(curve.onsets)
                r["delays"] += delays
                r["first"].append(cuts[0] if cuts else None)
    return rows


def print_synthetic(rows: dict, seeds: int) -> None:
    print(f"\n1. synthetic curves, {seeds} noise seeds each (a cut is on time within "
          f"{WINDOW} epochs after a plateau onset)")
    print(f"{'curve':30s} {'scheduler':38s} {'false cuts':>10s} {'on time':>9s} "
          f"{'median delay':>12s} {'median 1st cut':>14s}")
    totals = {k: [0, 0, 0] for k in SCHEDULERS}
    for (name, kind), r in rows.items():
        firsts = [f for f in r["first"] if f is not None]
        delay = f"{np.median(r['delays']):.0f}" if r["delays"] else "-"
        first = f"{np.median(firsts):.0f}" if firsts else "none"
        ontime = f"{r['hits']}/{r['plateaus']}" if r["plateaus"] else "-"
        print(f"{name:30s} {kind:38s} {r['false']:10d} {ontime:>9s} {delay:>12s} {first:>14s}")
        totals[kind][0] += r["false"]
        totals[kind][1] += r["hits"]
        totals[kind][2] += r["plateaus"]
    print("totals over the suite:")
    for kind, (false, hits, plateaus) in totals.items():
        print(f"  {kind:38s} false cuts {false:4d}   plateaus cut on time {hits}/{plateaus}")


def mlp(p: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def load(name: str):
    from bagoftricks.data import digits_zipf, mnist1d
    ds = mnist1d() if name == "mnist1d" else digits_zipf()
    std = RunningStandardizer().fit([torch.as_tensor(ds.X)])
    return (std.transform(torch.as_tensor(ds.X)), torch.as_tensor(ds.y),
            std.transform(torch.as_tensor(ds.X_rest)), torch.as_tensor(ds.y_rest))


def train(data, scheduler: str, epochs: int, seed: int, lr: float = 0.05):
    """SGD-momentum MLP; returns per-epoch (train loss, val loss, val acc, lr)."""
    X, y, Xv, yv = data
    model = mlp(X.shape[1], seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = None
    if scheduler == "ReduceLROnPlateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    elif scheduler == "FluctuationPlateau":
        sched = FluctuationPlateau(opt)
    gen = torch.Generator().manual_seed(seed)
    hist = []
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            out = model(Xv)
            val = nn.functional.cross_entropy(out, yv).item()
            acc = (out.argmax(1) == yv).float().mean().item()
        hist.append((total / len(y), val, acc, opt.param_groups[0]["lr"]))
        if sched is not None:
            sched.step(val)
    return np.array(hist)


def real_report(epochs: int = 150) -> None:
    print(f"\n2. real curves: per-epoch training and validation loss of an MLP at a constant "
          f"LR (SGD 0.05, momentum 0.9), {epochs} epochs; epochs where each would cut")
    for name in ("mnist1d", "digits"):
        hist = train(load(name), "constant", epochs, seed=0)
        for col, label in ((0, "train loss"), (1, "val loss")):
            print(f"{name} {label} (min at epoch {int(np.argmin(hist[:, col])) + 1}):")
            for kind in SCHEDULERS:
                print(f"  {kind:38s} {cut_epochs(kind, hist[:, col])}")


def train_report(seeds: int, epochs: int, png: str | None) -> None:
    data = load("mnist1d")
    print(f"\n3. end to end on mnist1d: MLP, SGD 0.05 momentum 0.9, batches of 64, {epochs} "
          f"epochs, {seeds} seeds; schedulers stepped on the validation loss")
    print(f"{'schedule':22s} {'final val loss':>18s} {'final val acc':>18s} "
          f"{'best val loss':>18s}")
    curves = {}
    for scheduler in ("constant", "ReduceLROnPlateau", "FluctuationPlateau"):
        runs = np.array([train(data, scheduler, epochs, s) for s in range(seeds)])
        curves[scheduler] = runs
        final, best = runs[:, -1, :], runs[:, :, 1].min(1)
        print(f"{scheduler:22s} {final[:, 1].mean():10.4f} ± {final[:, 1].std():.4f} "
              f"{final[:, 2].mean():10.4f} ± {final[:, 2].std():.4f} "
              f"{best.mean():10.4f} ± {best.std():.4f}")
    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for color, (name, runs) in zip(("C0", "C3", "C2"), curves.items(), strict=True):
            for s, run in enumerate(runs):
                ax1.plot(run[:, 3], color=color, alpha=0.6, label=name if s == 0 else None)
                ax2.plot(run[:, 1], color=color, alpha=0.6, label=name if s == 0 else None)
        ax1.set(yscale="log", xlabel="epoch", ylabel="learning rate", title="LR schedule")
        ax2.set(xlabel="epoch", ylabel="validation loss", title="mnist1d validation loss")
        ax1.legend()
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="all", choices=("synthetic", "real", "train", "all"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--png", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.part in ("synthetic", "all"):
        print_synthetic(synthetic_report(), 20)
    if args.part in ("real", "all"):
        real_report()
    if args.part in ("train", "all"):
        train_report(args.seeds, args.epochs, args.png)


if __name__ == "__main__":
    main()
