"""Side-by-side runs behind ``demo`` and ``compare``: the same model plain, with the
default tricks, with every trick, and (for ablations) with each trick switched off or
on in turn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loop import FitResult, Tricks, fit
from .models import tabular_mlp


@dataclass
class Run:
    name: str
    seed: int
    result: FitResult


def variants(ablate: bool) -> dict[str, Tricks]:
    """plain, the defaults and every trick; with ``ablate``, the defaults without each
    trick they have and with each one they leave off."""
    defaults = Tricks()
    out = {"plain": Tricks.none(), "defaults": defaults, "all tricks": Tricks.all()}
    if ablate:
        out.update({f"defaults without {n}": defaults.without(n) for n in defaults.on()})
        out.update({f"defaults with {n}": defaults.plus(n) for n in defaults.off()})
    return out


def run_all(train, val, num_outputs: int, tricks: dict[str, Tricks], *, epochs: int,
            batch_size: int, lr: float, seeds: int, log: str, val_prior=None) -> list[Run]:
    """Every variant of ``tricks`` over ``seeds`` paired seeds (``fit``'s ``val_prior``:
    the class mix of ``val`` where it is not the training data's)."""
    runs = []
    for seed in range(seeds):
        for name, t in tricks.items():
            model = tabular_mlp(train[0].shape[1], num_outputs, seed=seed)
            res = fit(model, train, val_data=val, epochs=epochs, batch_size=batch_size, lr=lr,
                      tricks=t, seed=seed, log=log, val_prior=val_prior)
            runs.append(Run(name, seed, res))
    return runs


def _mean_std(values, fmt: str = ".4f") -> str:
    """``mean ± std`` over seeds (NaN = never reached, counted)."""
    v = np.asarray(values, float)
    if np.isnan(v).all():
        return "never"
    out = f"{np.nanmean(v):{fmt}}" + (f" ± {np.nanstd(v):{fmt}}" if len(v) > 1 else "")
    return out + (f" ({int(np.isnan(v).sum())} never)" if np.isnan(v).any() else "")


def summarize(runs: list[Run]) -> tuple[list[str], list[list[str]], dict]:
    """A table: per variant, mean ± std over seeds of the headline numbers, and the best
    validation loss minus plain's of the same seed (with how many seeds it was lower)."""
    plain = {r.seed: r.result.history for r in runs if r.name == "plain"}
    names = list(dict.fromkeys(r.name for r in runs))
    classification = runs[0].result.task == "classification"
    metric_name = "balanced_accuracy" if classification else "r2"
    label = "balanced acc" if classification else "R²"
    kept_by = "calibrated_val_loss" if classification else "val_loss"  # as fit keeps
    header = ["run", f"best {'calibrated ' if classification else ''}val loss",
              "minus plain's, paired", "lower than plain",
              "epoch of best", "epochs to plain's best", f"{label} at best", f"final {label}",
              "seconds"]
    rows, stats = [], {}
    for name in names:
        mine = [r for r in runs if r.name == name]
        best, at, reach, at_best, metric, secs = [], [], [], [], [], []
        for r in mine:
            h = r.result.history
            val = h.series(kept_by)
            best.append(min(val))
            at.append(int(np.argmin(val)) + 1)
            target = min(plain[r.seed].series(kept_by))
            hit = [i + 1 for i, v in enumerate(val) if v <= target]
            reach.append(hit[0] if hit else np.nan)
            at_best.append(h.epochs[at[-1] - 1][metric_name])  # the model fit returns
            metric.append(h.epochs[-1][metric_name])
            secs.append(sum(h.series("seconds")))
        stats[name] = {"best_val_loss": best, "epoch_of_best": at, "epochs_to_plain_best": reach,
                       "metric_at_best": at_best, "final_metric": metric, "seconds": secs}
        diff = np.array(best) - np.array([min(plain[r.seed].series(kept_by)) for r in mine])
        rows.append([name, _mean_std(best), "–" if name == "plain" else _mean_std(diff),
                     "–" if name == "plain" else f"{(diff < 0).sum()}/{len(diff)} seeds",
                     _mean_std(at, ".1f"), _mean_std(reach, ".1f"), _mean_std(at_best),
                     _mean_std(metric), _mean_std(secs, ".1f")])
    return header, rows, stats


def first_seed_histories(runs: list[Run]) -> dict:
    return {r.name: r.result.history for r in runs if r.seed == 0}
