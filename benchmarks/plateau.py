"""Plateau detection: FluctuationPlateau vs ReduceLROnPlateau on curves with a known truth.

1. Synthetic curves, 20 noise seeds each, in two families. FluctuationPlateau's defaults
   were chosen on the *calibration* family (noisy exponential decay reaching its floor at
   a known epoch; a steady noisy decline that never plateaus; a plateau then a second
   descent; a decline with heavy-tailed spikes; the chapter's alternating ±noise). The
   *held-out* family was written afterwards and never used to choose anything: random
   onsets, AR(1)-correlated and multiplicative noise, power-law and sigmoid-shaped
   descents, staircases, declines with rare large spikes. Each scheduler is scored with
   its defaults and with the best setting of a small grid (the same size for both,
   chosen on the calibration family by on-time cuts minus false cuts), so both are tuned
   alike. A cut is *on time* when it falls within 20 epochs after a plateau onset,
   *false* when the noise-free curve fell over all of the 20 epochs before it (20: not
   either scheduler's own window or patience).
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

SCORE_WINDOW = 20  # epochs: on time after an onset; falling before a false cut


@dataclass
class Curve:
    name: str
    values: np.ndarray
    clean: np.ndarray      # the noise-free curve (the truth)
    onsets: list[int]      # epochs where a plateau starts


def calibration(seed: int) -> list[Curve]:
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


def held_out(seed: int) -> list[Curve]:
    rng = np.random.default_rng(10_000 + seed)
    t = np.arange(160, dtype=float)

    def ar1(sigma: float, phi: float = 0.6) -> np.ndarray:
        e = rng.normal(0, sigma * np.sqrt(1 - phi**2), t.size)
        out = np.empty(t.size)
        out[0] = rng.normal(0, sigma)
        for i in range(1, t.size):
            out[i] = phi * out[i - 1] + e[i]
        return out

    out = []
    # decline to a random onset, then flat, correlated noise
    onset = int(rng.integers(30, 110))
    clean = np.interp(t, [0, onset, 159], [2.0, 2.0 - rng.uniform(0.5, 1.5), 0.0])
    clean[onset:] = clean[onset]
    out.append(Curve("linear to random onset, AR(1)", clean + ar1(rng.uniform(0.01, 0.04)),
                     clean, [onset]))
    # power-law decay that never flattens, multiplicative noise
    clean = 2.0 * (1 + t / rng.uniform(5, 20)) ** -rng.uniform(0.3, 0.6)
    out.append(Curve("power law, multiplicative", clean * np.exp(rng.normal(0, 0.01, t.size)),
                     clean, []))
    # a slow decline with a sigmoid-shaped drop at a random epoch, flat once it settles
    mid = rng.uniform(30, 90)
    onset = int(mid + 20)  # the drop is within 0.7% of done
    clean = 1.0 - 0.005 * np.minimum(t, onset) + 0.8 / (1 + np.exp((t - mid) / 4))
    clean[onset:] = clean[onset]
    out.append(Curve("sigmoid drop", clean + rng.normal(0, 0.02, t.size), clean, [onset]))
    # staircase: flat, drop, flat, drop, flat (onsets at each flat stretch)
    a, b = sorted(rng.choice(np.arange(40, 120), 2, replace=False))
    clean = np.interp(t, [0, 20, a, a + 10, b, b + 10, 159],
                      [2.0, 1.6, 1.6, 1.2, 1.2, 0.9, 0.9])
    out.append(Curve("staircase", clean + ar1(0.015), clean, [20, int(a) + 10, int(b) + 10]))
    # steady decline with rare large spikes (2% of epochs, +0.3)
    clean = 2.0 - 0.008 * t
    spikes = (rng.random(t.size) < 0.02) * 0.3
    out.append(Curve("decline, rare spikes", clean + rng.normal(0, 0.02, t.size) + spikes,
                     clean, []))
    return out


FAMILIES = {"calibration": calibration, "held-out": held_out}


def cut_epochs(kind: str, values, **kw) -> list[int]:
    """Feed a curve, one value per epoch; the 1-based epochs where the LR dropped."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    if kind == "FluctuationPlateau":
        sched = FluctuationPlateau(opt, **kw)
    elif kind == "ReduceLROnPlateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
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
    w = SCORE_WINDOW
    false = sum(1 for c in cuts if c > w and falling[c - w - 1:c - 1].all())
    delays = []
    for onset in curve.onsets:
        hit = [c - onset for c in cuts if onset <= c <= onset + w]
        if hit:
            delays.append(hit[0])
    return false, len(delays), delays


# The same size of grid (9 settings) for each; the tuned setting maximises on-time cuts
# minus false cuts on the calibration family.
GRIDS = {
    "FluctuationPlateau": [{"window": w, "threshold": th}
                           for w in (8, 16, 24) for th in (0.1, 0.3, 0.5)],
    "ReduceLROnPlateau": [{"patience": p, "threshold": th}
                          for p in (5, 10, 20) for th in (1e-4, 1e-3, 1e-2)],
}


def family_rows(family: str, kind: str, kw: dict, seeds: int) -> dict:
    """Per-curve tallies of one scheduler setting over a family's seeds."""
    rows = {}
    for seed in range(seeds):
        for curve in FAMILIES[family](seed):
            cuts = cut_epochs(kind, curve.values, **kw)
            false, hits, delays = score(curve, cuts)
            r = rows.setdefault(curve.name, {"false": 0, "hits": 0, "plateaus": 0,
                                             "delays": [], "first": []})
            r["false"] += false
            r["hits"] += hits
            r["plateaus"] += len(curve.onsets)
            r["delays"] += delays
            r["first"].append(cuts[0] if cuts else None)
    return rows


def totals(rows: dict) -> tuple[int, int, int]:
    return tuple(sum(r[k] for r in rows.values()) for k in ("false", "hits", "plateaus"))


def tuned(kind: str, seeds: int) -> dict:
    """The grid setting with the most on-time cuts minus false cuts on calibration."""
    def merit(kw):
        false, hits, _ = totals(family_rows("calibration", kind, kw, seeds))
        return hits - false
    return max(GRIDS[kind], key=merit)


def synthetic_report(seeds: int = 20) -> None:
    settings = {"FluctuationPlateau (defaults)": ("FluctuationPlateau", {}),
                "ReduceLROnPlateau (torch defaults)": ("ReduceLROnPlateau", {}),
                "ReduceLROnPlateau (Keras style, abs)": ("Keras", {})}
    for kind in GRIDS:
        kw = tuned(kind, seeds)
        settings[f"{kind} (tuned: {', '.join(f'{k}={v}' for k, v in kw.items())})"] = (kind, kw)
    print(f"\n1. synthetic curves, {seeds} noise seeds each (a cut is on time within "
          f"{SCORE_WINDOW} epochs after a plateau onset; tuned = best of a 9-setting grid "
          "on the calibration family)")
    for family in FAMILIES:
        print(f"\n{family} family")
        print(f"{'curve':30s} {'scheduler':56s} {'false cuts':>10s} {'on time':>9s} "
              f"{'median delay':>12s} {'median 1st cut':>14s}")
        sums = {}
        for label, (kind, kw) in settings.items():
            rows = family_rows(family, kind, kw, seeds)
            sums[label] = totals(rows)
            for name, r in rows.items():
                firsts = [f for f in r["first"] if f is not None]
                delay = f"{np.median(r['delays']):.0f}" if r["delays"] else "-"
                first = f"{np.median(firsts):.0f}" if firsts else "none"
                ontime = f"{r['hits']}/{r['plateaus']}" if r["plateaus"] else "-"
                print(f"{name:30s} {label:56s} {r['false']:10d} {ontime:>9s} {delay:>12s} "
                      f"{first:>14s}")
        print(f"totals over the {family} family:")
        for label, (false, hits, plateaus) in sums.items():
            print(f"  {label:56s} false cuts {false:4d}   plateaus cut on time "
                  f"{hits}/{plateaus}")


SCHEDULERS = ("FluctuationPlateau", "ReduceLROnPlateau", "Keras")


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
                label = {"ReduceLROnPlateau": "ReduceLROnPlateau (torch defaults)",
                         "Keras": "ReduceLROnPlateau (Keras style, abs)"}.get(kind, kind)
                print(f"  {label:38s} {cut_epochs(kind, hist[:, col])}")


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
        synthetic_report()
    if args.part in ("real", "all"):
        real_report()
    if args.part in ("train", "all"):
        train_report(args.seeds, args.epochs, args.png)


if __name__ == "__main__":
    main()
