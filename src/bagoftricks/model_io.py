"""The model folder of ``bagoftricks fit`` / ``predict``: weights (with the standardizer
inside the model), the schema with the label mapping, and the architecture."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from . import distributed, table_cache
from .calibration import BOUNDS, Temperature
from .data import stratified_split
from .files import (
    atomic_file,
    atomic_folder,
    atomic_save,
    check_output_folder,
    clear_folder,
    mark_folder,
    remove_if_unused,
    run_lock,
)
from .loop import FitResult, Tricks, checkpoint, fit
from .models import tabular_mlp
from .prior import PriorShift, check_prior, parse_prior
from .standardize import Standardize
from .tabular import Schema, encode, iter_batches, scan_for_training

HIDDEN = (128, 64)


def partial_folder(out: Path) -> Path:
    """Where ``fit`` keeps its checkpoints until the model folder is complete."""
    return Path(f"{out}.partial")


def check_fit_output(data: Path, out: Path, overwrite: bool) -> None:
    """Refuse, before any work, a model folder (or its checkpoint folder) whose
    replacement would lose files the user owns."""
    for folder in (out, partial_folder(out)):
        check_output_folder(folder, command="fit", inputs=[data], overwrite=overwrite)


def train_and_save(data: Path, target: str, out: Path, *, task: str | None, epochs: int,
                   batch_size: int, lr: float | str, seed: int, resume: bool, log: str,
                   overwrite: bool = False, lock: bool = True,
                   balance: str | None = "logit_adjust", standardize: bool = True,
                   class_bias: bool = False, device: str = "auto", precision: str = "32",
                   cache: Path | None = None) -> FitResult:
    """Scan, encode into a memory-mapped cache, train with the default tricks and, with
    ``standardize``, each feature column standardized (10% held out for the metrics, the
    best epoch by calibrated validation loss kept), and write ``out``; returns the
    ``FitResult``.

    Checkpoints live in ``out.partial/`` while training, so ``--resume`` continues a
    killed run and ``out`` appears only once complete. Rank 0 holds a lock on that
    folder for the whole run (``lock=False``: the launching process holds it), so a
    second run on the same ``out`` is refused. Rank 0 encodes the table once into
    ``cache`` (default: ``out.partial/``, removed with it); every rank maps it, so the
    ranks of a machine share one copy in the page cache and the table need not fit in
    memory."""
    check_fit_output(data, out, overwrite)
    partial = partial_folder(out)
    s = scan_for_training(data, target, task)  # every data error before anything is written
    k = len(s.schema.classes) if s.schema.task == "classification" else 1
    if class_bias and s.schema.task != "classification":
        raise ValueError(f"--class-bias: only for a classifier; {target!r} is a regression "
                         "target")
    leader = distributed.rank() == 0  # only rank 0 writes
    folder = table_cache.cache_folder(data, s, cache or partial)
    with contextlib.ExitStack() as stack:
        error = None
        if leader:
            try:
                mark_folder(partial, "fit")
                stack.callback(_leave_only_what_resumes, partial, None if cache else folder)
                if lock:
                    stack.enter_context(run_lock(partial))
                if not resume:
                    clear_folder(partial)
                table_cache.write(data, s, folder)
            except ValueError as err:
                error = err
        if distributed.any_rank(error is not None):  # every rank stops together
            raise error or ValueError("--out: rank 0 could not start the run")
        X, y = (torch.from_numpy(a) for a in table_cache.open_cached(folder))
        tr, va = (torch.as_tensor(i) for i in stratified_split(y.numpy(), 0.1, seed))
        rows = TensorDataset(X, y)  # the rows of each set are read in place, not copied
        val = Subset(rows, va) if len(va) else None  # a tiny file may leave none to hold out
        model = tabular_mlp(X.shape[1], k, HIDDEN, seed=seed)
        try:
            result = fit(model, Subset(rows, tr), val_data=val, epochs=epochs,
                         batch_size=batch_size, lr=lr,
                         tricks=Tricks(balance=balance, standardize=standardize),
                         checkpoint_dir=partial, resume=resume, seed=seed, log=log,
                         class_bias=class_bias, device=device, precision=precision)
        except FloatingPointError as err:  # a data error to the user: say which column
            what = str(err).split(";")[0].removeprefix("LossAccumulator: ")
            raise ValueError(f"DATA: the training loss is not finite ({what})"
                             f"{_widest(s, standardize)}") from None
        # the best epoch's weights behind the standardizer; the priors go to config.json
        standardize = (Standardize(result.standardizer) if result.standardizer is not None
                       else Standardize(num_features=X.shape[1]))  # identity: same format
        full = nn.Sequential(standardize, model).cpu()
        priors = {} if result.prior is None else {
            "prior": result.prior.tolist(), "effective_prior": result.effective_prior.tolist(),
            "temperature": result.temperature}
        if result.class_bias is not None:
            priors["class_bias"] = result.class_bias

        def write(folder: Path) -> None:
            atomic_save(full.state_dict(), folder / "model.pt")
            s.schema.save(folder / "schema.json")
            (folder / "config.json").write_text(json.dumps(
                {"in_features": int(X.shape[1]), "out_features": k, "hidden": list(HIDDEN),
                 "best_epoch": result.best_epoch, "balance": balance, **priors,
                 "history": result.history.epochs},
                indent=1))
        if leader:
            atomic_folder(out, write, command="fit")
            shutil.rmtree(partial, ignore_errors=True)
    return result


def load_model(model_dir: Path, prior: str = "true") -> tuple[nn.Module, Schema]:
    """The model and schema of a folder written by ``fit``. The architecture is read off
    the weights' shapes and must agree with ``config.json`` (so a tampered config cannot
    ask for an arbitrary allocation); anything else is one clear error. A classifier's
    logits are moved from the prior it was trained under to ``prior``: ``"true"`` (the
    training data's), ``"balanced"`` or ``"name=p,..."`` (see ``parse_prior``)."""
    model_dir = Path(model_dir)
    if not (model_dir / "model.pt").is_file():
        raise ValueError(f"MODEL_DIR: {model_dir} is not a folder written by 'bagoftricks fit'")
    broken = ValueError(f"MODEL_DIR: {model_dir} is not a model written by bagoftricks, or it "
                        "is corrupted")
    try:
        schema = Schema.load(model_dir / "schema.json")
        cfg = json.loads((model_dir / "config.json").read_text())
        state = torch.load(model_dir / "model.pt", weights_only=True)
        widths = [state[f"1.{2 * i}.weight"].shape for i in range(len(cfg["hidden"]) + 1)]
        hidden = [int(w[0]) for w in widths[:-1]]
        shapes_agree = (list(cfg["hidden"]) == hidden
                        and cfg["in_features"] == widths[0][1]
                        and cfg["out_features"] == widths[-1][0]
                        and len(schema.feature_names()) == cfg["in_features"])
        if schema.task == "classification":
            true_prior = check_prior(cfg["prior"], "prior", cfg["out_features"])
            effective = check_prior(cfg["effective_prior"], "effective_prior",
                                    cfg["out_features"])
            temperature = float(cfg.get("temperature", 1.0))  # (older folders: none)
            if not BOUNDS[0] <= temperature <= BOUNDS[1]:
                raise ValueError("temperature")
            bias = cfg.get("class_bias")  # (fit --class-bias)
            if bias is not None and (len(bias) != cfg["out_features"]
                                     or not np.isfinite(np.asarray(bias, float)).all()):
                raise ValueError("class_bias")
    except (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError,
            pickle.UnpicklingError):
        raise broken from None
    if not shapes_agree:
        raise broken
    layers = [Standardize(num_features=cfg["in_features"]),
              tabular_mlp(cfg["in_features"], cfg["out_features"], hidden)]
    model = nn.Sequential(*layers)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise broken from None
    if schema.task == "classification":
        target = parse_prior(prior, schema.classes, true_prior)
        model = nn.Sequential(*layers, Temperature(temperature, bias),
                              PriorShift(effective, target))
    elif prior != "true":
        raise ValueError("--prior: only for a classifier (this model is a regression)")
    return model.eval(), schema


def is_predictions_file(path: Path) -> bool:
    """True for a CSV that ``predict_file`` wrote (its header starts with ``prediction``)."""
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [None])[0] == "prediction"
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _leave_only_what_resumes(partial: Path, own_cache: Path | None) -> None:
    """However a run ends: without a checkpoint there is nothing to resume, so the
    encoded table it keeps in ``partial`` (``own_cache``) goes, and then ``partial``."""
    if own_cache is not None and not (partial / checkpoint.CHECKPOINT).exists():
        shutil.rmtree(own_cache, ignore_errors=True)
    remove_if_unused(partial)


def _widest(scan, standardized: bool) -> str:
    """``; the widest column, 'c', has std 3.1e+37: rescale it`` (or standardize it, when
    training did not), or nothing."""
    if scan.standardizer is None or not scan.schema.numeric:
        return ""
    std = scan.standardizer.std.tolist()
    j = max(range(len(std)), key=lambda i: std[i] if math.isfinite(std[i]) else -1.0)
    return (f"; the widest column, {scan.schema.numeric[j]!r}, has std {std[j]:.3g}: rescale "
            "it" + ("" if standardized else " (or leave out --no-standardize)"))


@torch.no_grad()
def predict_file(model_dir: Path, data: Path, out: Path, prior: str = "true") -> int:
    """Write predictions for every row of ``data`` to the CSV ``out``; returns the count."""
    model, schema = load_model(model_dir, prior)
    n = 0
    with atomic_file(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        if schema.task == "classification":
            writer.writerow(["prediction"] + [f"p_{c}" for c in schema.classes])
        else:
            writer.writerow(["prediction"])
        for batch in iter_batches(data):
            X, _ = encode(batch, schema, with_target=False)
            outp = model(torch.as_tensor(X))
            bad = ~torch.isfinite(outp).all(1)
            if bad.any():  # never a NaN probability written as if it were one
                raise ValueError(f"DATA: {int(bad.sum())} row(s) give non-finite scores (first at "
                                 f"data row {n + int(bad.nonzero()[0, 0]) + 1}): their values "
                                 "overflow the model's float32 arithmetic; rescale the columns "
                                 "with the largest values")
            if schema.task == "classification":
                proba = outp.softmax(1).numpy()
                for row in proba:
                    writer.writerow([schema.classes[int(np.argmax(row))],
                                     *[f"{p:.6g}" for p in row]])
            else:
                writer.writerows([[f"{v:.6g}"] for v in outp[:, 0].tolist()])
            n += batch.num_rows
    return n
