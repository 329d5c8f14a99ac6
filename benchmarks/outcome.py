"""Does every default trick earn its place? The reference recipe, the defaults, the
defaults without each trick they have and with each one they leave off, over paired
seeds, on every bundled task.

Tasks: mnist1d with the demo's MLP 128-64 and with the mnist1d reference CNN;
mnist1d-zipf, digits-zipf and breast-cancer-rare with the MLP. Runs:

- ``plain``: the reference recipe — a hand-tuned Adam at 1e-2, batches of 100, no trick;
- ``defaults``: ``fit`` as shipped, with no learning rate, optimizer or batch size given;
- ``defaults - X``: the defaults with trick X switched off;
- ``defaults + X``: the defaults with trick X switched on (as ``Tricks.all()`` has it),
  and the plateau scheduler deciding on the training loss instead of the validation
  loss (which rises once the model overfits);
- ``defaults at lr X`` (``--lrs``): the defaults at another learning rate, or at the
  range test's (``--lrs auto``).

Every run of a seed starts from the same initial weights. The metric is accuracy on
mnist1d and balanced accuracy on the imbalanced tasks (where the rarest class's recall
is printed too). Per run: the final and the best metric (mean ± std, as the history
records them), the metric of the model ``fit`` returns (the epoch it keeps), scored as a
user would use it (its predictor under the training prior for accuracy, under a
balanced prior for balanced accuracy), and its paired difference to plain's final
metric (what the hand-written recipe hands back), the paired
difference of the final metric to plain and to the defaults (mean ± std, and in how
many seeds the run won), the returned model's paired difference to the defaults'
(and in how many seeds it was below), and the epochs and seconds it took to reach plain's final
metric (mean over the seeds that reached it, and how many did). The rule the defaults
follow: a trick is on only where it does not hurt on any task — the defaults with it
minus without it >= 0 on average, and worse in at most 3 of 8 seeds.

    python benchmarks/outcome.py [--seeds 8] [--epochs 150] [--task mnist1d-cnn]
                                 [--run "defaults - balance"] [--val-prior] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from bagoftricks import Tricks, fit
from bagoftricks.data import load, stratified_split
from bagoftricks.models import tabular_mlp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import SmallCNN, adam  # noqa: E402

PUBLISHED = {"mnist1d-mlp": 0.68, "mnist1d-cnn": 0.94}  # the mnist1d README's accuracies
TASKS = {"mnist1d-mlp": "mnist1d", "mnist1d-cnn": "mnist1d", "mnist1d-zipf": "mnist1d-zipf",
         "digits-zipf": "digits-zipf", "breast-cancer-rare": "breast-cancer-rare"}


def split(name: str):
    ds = load(name)
    if ds.X_rest is not None:
        return (ds.X, ds.y), (ds.X_rest, ds.y_rest), ds.num_classes
    tr, va = stratified_split(ds.y, 0.3, 0)
    return (ds.X[tr], ds.y[tr]), (ds.X[va], ds.y[va]), ds.num_classes


def model_for(task: str, width: int, k: int, seed: int):
    if task.endswith("cnn"):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return SmallCNN()
    return tabular_mlp(width, k, seed=seed)


def run(task: str, variant: str, seed: int, epochs: int, data, val_prior=None) -> dict:
    """One training run: per-epoch metric, rarest-class recall and elapsed seconds
    (``val_prior``: ``fit``'s, for every run but plain, the recipe, which has none)."""
    train, val, k = data
    model = model_for(task, train[0].shape[1], k, seed)
    if variant == "plain":
        options = {"lr": 1e-2, "batch_size": 100, "tricks": Tricks.none(), "optimizer": adam}
    elif variant == "defaults":
        options = {}
    elif variant.startswith("defaults at lr "):
        lr = variant.removeprefix("defaults at lr ")
        options = {"lr": lr if lr == "auto" else float(lr)}
    elif variant.startswith("defaults + plateau on "):
        options = {"tricks": Tricks(plateau=True,
                                    plateau_monitor=variant.removeprefix("defaults + plateau on "))}
    elif variant.startswith("defaults + "):
        options = {"tricks": Tricks().plus(variant.removeprefix("defaults + "))}
    else:
        options = {"tricks": Tricks().without(variant.removeprefix("defaults - "))}
    if variant != "plain" and val_prior is not None:
        options["val_prior"] = val_prior
    res = fit(model, train, val_data=val, epochs=epochs, seed=seed, log="none", **options)
    metric = "accuracy" if task.startswith("mnist1d-") and "zipf" not in task \
        else "balanced_accuracy"
    rarest = int(np.argmin(np.bincount(np.asarray(train[1]), minlength=k)))
    # the model fit hands back, deciding as a user would: under the training prior for
    # accuracy, under a balanced prior (predict --prior balanced) for balanced accuracy
    predictor = res.predictor if metric == "accuracy" else res.predictor_for("balanced")
    with torch.no_grad():
        pred = predictor(torch.as_tensor(val[0])).argmax(1).numpy()
    score = accuracy_score if metric == "accuracy" else balanced_accuracy_score
    return {"metric": np.array(res.history.series(metric)),
            "returned": score(np.asarray(val[1]), pred),
            "rarest": np.array([r[rarest] or 0.0 for r in res.history.series("recall")]),
            "seconds": np.cumsum(res.history.series("seconds"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--task", choices=list(TASKS), action="append")
    parser.add_argument("--run", action="append",
                        help="only these runs (repeatable; plain, defaults and --lrs always run)")
    parser.add_argument("--lrs", default="", help="also the defaults at these learning "
                        "rates (comma-separated; 'auto': the range test's)")
    parser.add_argument("--val-prior", action="store_true", help="score the tricks' runs "
                        "under the validation set's own class mix (fit's val_prior)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 epochs, one task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = args.task or list(TASKS)
    if args.quick:
        tasks, args.seeds, args.epochs = ["mnist1d-zipf"], 2, 3
    variants = ["plain", "defaults"] + [f"defaults - {n}" for n in Tricks().on()] + [
        f"defaults + {n}" for n in Tricks().off()] + [
        "defaults + plateau on train_loss", "defaults + plateau on calibrated_val_loss"] + [
        f"defaults at lr {lr}" for lr in args.lrs.split(",") if lr]
    if args.run:
        unknown = sorted(set(args.run) - set(variants))
        if unknown:
            parser.error(f"--run: unknown {unknown}; choose from {variants}")
        variants = [v for v in variants if v in ("plain", "defaults", *args.run)
                    or v.startswith("defaults at lr ")]
    print("| task | run | final | best | returned model | returned − plain's final, paired "
          "(seeds above) | rarest-class recall | final − plain, paired | "
          "seeds beating plain | this run − defaults, paired | seeds it beat the defaults | "
          "returned − the defaults' returned, paired (seeds below) | "
          "epochs to plain's final | s to plain's final |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for task in tasks:
        data = split(TASKS[task])
        t0 = time.perf_counter()
        val_prior = np.bincount(data[1][1], minlength=data[2]) / len(data[1][1]) \
            if args.val_prior else None
        runs = {v: [run(task, v, s, args.epochs, data, val_prior) for s in range(args.seeds)]
                for v in variants}
        target = [r["metric"][-1] for r in runs["plain"]]  # plain's final, per seed
        base_final = np.array([r["metric"][-1] for r in runs["defaults"]])
        base_returned = np.array([r["returned"] for r in runs["defaults"]])
        for v, rs in runs.items():
            final = np.array([r["metric"][-1] for r in rs])
            returned = np.array([r["returned"] for r in rs])
            ahead = returned - np.array(target)  # over plain's final
            best = np.array([r["metric"].max() for r in rs])
            rarest = np.array([r["rarest"][-1] for r in rs])
            diff = final - np.array(target)
            gain = final - base_final  # this run over the defaults (minus a trick's share)
            kept = returned - base_returned  # the same for the models fit returns
            reached = [(int(np.argmax(r["metric"] >= t)), r["seconds"][np.argmax(
                r["metric"] >= t)]) for r, t in zip(rs, target, strict=True)
                if (r["metric"] >= t).any()]
            epochs = f"{np.mean([e + 1 for e, _ in reached]):.0f} ({len(reached)}/{len(rs)})" \
                if reached else f"never (0/{len(rs)})"
            secs = f"{np.mean([s for _, s in reached]):.2f}" if reached else "–"
            recall = f"{rarest.mean():.3f}" if "zipf" in task or "rare" in task else "–"
            print(f"| {task} | {v} | {final.mean():.4f} ± {final.std():.4f} | {best.mean():.4f} "
                  f"± {best.std():.4f} | {returned.mean():.4f} ± {returned.std():.4f} | "
                  f"{ahead.mean():+.4f} ± {ahead.std():.4f} ({(ahead > 0).sum()}/"
                  f"{len(rs)}) | {recall} | {diff.mean():+.4f} ± {diff.std():.4f} | "
                  f"{(diff > 0).sum()}/{len(rs)} | {gain.mean():+.4f} ± {gain.std():.4f} | "
                  f"{(gain > 0).sum()}/{len(rs)} | {kept.mean():+.4f} ± {kept.std():.4f} "
                  f"({(kept < 0).sum()}/{len(rs)}) | {epochs} | {secs} |", flush=True)
        if task in PUBLISHED:  # how many seeds end at the published accuracy
            reach = ", ".join(f"{v} {sum(r['metric'][-1] >= PUBLISHED[task] for r in rs)}/"
                              f"{len(rs)}" for v, rs in runs.items())
            print(f"<!-- {task}: seeds ending at >= {PUBLISHED[task]}: {reach} -->")
        print(f"<!-- {task}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
