"""The ``bagoftricks`` command: demo, compare, doctor, fit, predict, glm, bench."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from ._validation import check_choice, check_float, check_int
from .loop.adapters import BALANCE

BALANCE_CHOICES = tuple(b or "none" for b in BALANCE)  # the loop's options, None spelt out
BALANCE_HELP = ("Class balance: oversample, weights, logit_adjust (the logit-adjusted "
                "loss) or none; predictions are corrected back to the true prior.")
OVERWRITE_HELP = "Replace OUT even if it holds files this command did not write."

app = typer.Typer(help="Tricks that make neural nets train faster and correctly.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _console() -> Console:
    console = Console()
    console.width = max(console.width, 120)
    return console


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bagoftricks {__version__}")
        raise typer.Exit()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"warning: {message}", err=True)


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Tricks that make neural nets train faster and correctly."""
    warnings.showwarning = _one_line_warning


def clean_errors(fn):
    """Bad input ends with one line on stderr and exit code 2, never a traceback (under
    torchrun, rank 0 alone prints it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:  # (a RuntimeError too, but an intended exit)
            raise
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
            if os.environ.get("RANK", "0") == "0":
                typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
    return wrapper


def _check_common(*, epochs: int | None = None, batch_size: int | None = None,
                  lr: float | None = None, seeds: int | None = None,
                  task: str | None = None) -> None:
    """Validate the shared options before any data is read."""
    if epochs is not None:
        check_int("--epochs", epochs, 1)
    if batch_size is not None:
        check_int("--batch-size", batch_size, 1)
    if lr is not None:
        check_float("--lr", lr, positive=True)
    if seeds is not None:
        check_int("--seeds", seeds, 1)
    if task is not None:
        check_choice("--task", task, ("classification", "regression"))


def _lr_or_auto(text: str) -> float | str:
    """``--lr``: ``auto`` or a positive number."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--lr: expected a positive number or 'auto', got {text!r}") from None
    check_float("--lr", value, positive=True)
    return value


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        table.add_row(*r)
    _console().print(table)


def _log(quiet: bool) -> str:
    return "lines" if quiet else "auto"


@app.command()
@clean_errors
def demo(dataset: str = typer.Option("mnist1d-zipf", help="Bundled dataset: mnist1d-zipf, "
                                     "digits-zipf, breast-cancer-rare, mnist1d."),
         epochs: int = typer.Option(30, help="Epochs per run."),
         batch_size: int = typer.Option(32, help="Batch size."),
         seeds: int = typer.Option(3, help="Repeat over this many seeds (spread and paired "
                                   "differences reported)."),
         out: Path = typer.Option(Path("bagoftricks-report"), help="Report folder."),
         overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
         quiet: bool = typer.Option(False, "--quiet", help="Plain one-line-per-epoch logs.")
         ) -> None:
    """The main job: train the same MLP plain, with the default tricks and with all tricks
    on a bundled imbalanced
    dataset, print the comparison and write a report folder."""
    from .data import load, stratified_split
    from .experiments import first_seed_histories, run_all, summarize
    from .experiments import variants as make_variants
    from .files import check_output_folder
    from .loop import Tricks
    from .report import write_report

    _check_common(epochs=epochs, batch_size=batch_size, seeds=seeds)
    check_output_folder(out, command="demo", overwrite=overwrite)
    ds = load(dataset)
    val_prior = None  # a split of the training data follows its prior
    if ds.X_rest is not None:  # a held-out set with its own class mix: scored under it
        train, val = (ds.X, ds.y), (ds.X_rest, ds.y_rest)
        val_prior = np.bincount(ds.y_rest, minlength=ds.num_classes) / len(ds.y_rest)
    else:
        tr, va = stratified_split(ds.y, 0.3)
        train, val = (ds.X[tr], ds.y[tr]), (ds.X[va], ds.y[va])
    runs = run_all(train, val, ds.num_classes, make_variants(False), epochs=epochs,
                   batch_size=batch_size, lr=1e-2, seeds=seeds, log=_log(quiet),
                   val_prior=val_prior)
    header, rows, _ = summarize(runs)
    counts = np.bincount(train[1], minlength=ds.num_classes).tolist()
    title = f"{ds.name}: plain vs the defaults vs all tricks ({epochs} epochs, {seeds} seed(s))"
    _print_table(title, header, rows)
    description = (f"{ds.description}. Training class counts {counts}; validation: "
                   f"{len(val[1])} held-out samples"
                   f"{'' if val_prior is None else ', scored under their own class mix'}. "
                   f"MLP 128-64, Adam lr 1e-2, batches of "
                   f"{batch_size}. Default tricks: "
                   f"{', '.join(Tricks().on())}; all tricks: {', '.join(Tricks.all().on())}.")
    write_report(out, title, description, first_seed_histories(runs), header, rows,
                 [str(k) for k in range(ds.num_classes)], command="demo")
    typer.echo(f"report written to {out}/report.md")


@app.command()
@clean_errors
def compare(data: Path = typer.Argument(..., help="CSV, Parquet or NPZ file."),
            target: str = typer.Option(..., help="The column to predict."),
            task: str = typer.Option(None, help="classification or regression (inferred)."),
            ablate: bool = typer.Option(False, help="Also switch each trick off in turn."),
            epochs: int = typer.Option(30), batch_size: int = typer.Option(64),
            lr: float = typer.Option(1e-2), seeds: int = typer.Option(3),
            standardize: bool = typer.Option(True, help="Standardize each feature column for "
                                             "every run, as fit does (statistics of the "
                                             "training rows)."),
            out: Path = typer.Option(Path("bagoftricks-compare"), help="Report folder."),
            overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
            quiet: bool = typer.Option(False, "--quiet")) -> None:
    """Plain vs the default tricks vs all tricks (and ablations) on your data, with a
    report."""
    from .data import stratified_split
    from .experiments import first_seed_histories, run_all, summarize
    from .experiments import variants as make_variants
    from .files import check_output_folder
    from .report import write_report
    from .standardize import standardized_columns
    from .tabular import read

    _check_common(epochs=epochs, batch_size=batch_size, lr=lr, seeds=seeds, task=task)
    check_output_folder(out, command="compare", inputs=[data], overwrite=overwrite)
    s, X, y = read(data, target, task)
    tr, va = stratified_split(y, 0.2)
    if standardize:  # every run sees what bagoftricks fit trains on
        X = standardized_columns(X, tr)
    k = len(s.schema.classes) if s.schema.task == "classification" else 1
    runs = run_all((X[tr], y[tr]), (X[va], y[va]), k, make_variants(ablate), epochs=epochs,
                   batch_size=batch_size, lr=lr, seeds=seeds, log=_log(quiet))
    header, rows, _ = summarize(runs)
    title = f"{data.name} -> {target}: plain vs the defaults vs all tricks"
    _print_table(title, header, rows)
    write_report(out, title, f"{s.rows} rows, {X.shape[1]} encoded features"
                 f"{', standardized' if standardize else ''}, 20% held out.",
                 first_seed_histories(runs), header, rows,
                 [str(c) for c in s.schema.classes] if s.schema.classes else None,
                 command="compare")
    typer.echo(f"report written to {out}/report.md")


@app.command()
@clean_errors
def doctor(data: Path = typer.Argument(..., help="CSV, Parquet or NPZ file."),
           target: str = typer.Option(..., help="The column to predict."),
           task: str = typer.Option(None, help="classification or regression (inferred)."),
           batch_size: int = typer.Option(64, help="The batch size you will train with."),
           lr: float = typer.Option(1e-3, help="The LR tuned at --reference-batch-size."),
           reference_batch_size: int = typer.Option(64),
           balance: str = typer.Option("logit_adjust", help=BALANCE_HELP),
           range_test: bool = typer.Option(True, help="Run fit --lr auto's LR range test "
                                           "on a sample of the rows (a second pass)."),
           standardize: bool = typer.Option(True, help="As fit's --standardize, for the "
                                            "range test."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Inspect the data without training: which tricks apply and what they would set."""
    from .doctor import doctor_report, json_safe

    _check_common(batch_size=batch_size, lr=lr, task=task)
    check_int("--reference-batch-size", reference_batch_size, 1)
    check_choice("--balance", balance, BALANCE_CHOICES)
    rep = doctor_report(data, target, task, batch_size, lr, reference_batch_size, balance,
                        range_test, standardize)
    if as_json:
        notes: list[str] = []
        rep = json_safe(rep, notes=notes)
        typer.echo(json.dumps({**rep, "notes": notes}, indent=1, allow_nan=False))
        return
    console = _console()
    summary = Table(title=f"doctor: {data.name} -> {target}", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    for key in ("rows", "task", "features", "imbalance_ratio", "oversampled_epoch_size",
                "balance", "loss_at_init", "loss_at_zero_bias", "constant_columns", "non_finite",
                "needs_standardizing", "target_problems", "classes_too_small_to_validate"):
        if rep.get(key) not in (None, [], {}) or key in ("constant_columns", "non_finite"):
            summary.add_row(key.replace("_", " "), str(rep[key]))
    lr_info = rep["lr"]
    summary.add_row("rescaled LR", f"{lr_info['lr']:g} @ B={lr_info['reference_batch_size']} -> "
                    f"{lr_info['rescaled_lr_sgd']:g} (SGD, linear) / "
                    f"{lr_info['rescaled_lr_adam']:g} (Adam, sqrt) @ B={lr_info['batch_size']}")
    sweep = rep.get("lr_range_test")
    if sweep:
        summary.add_row("LR range test (fit --lr auto)", sweep.get("skipped") or (
            f"{sweep['suggestion']:.3g} @ B={batch_size} ({sweep['reason']}; "
            f"{sweep['rows']} rows of the whole file: fit sweeps its training split, so "
            "its LR differs by the sweep's noise)"))
    console.print(summary)
    if "classes" in rep:
        t = Table(title="classes")
        for h in ("class", "count", "balanced weight", "effective prior", "bias init",
                  "predict adds"):
            t.add_column(h, justify="left" if h == "class" else "right")
        for c, n in rep["classes"].items():
            t.add_row(c, str(n), f"{rep['balanced_weights'][c]:.4g}",
                      f"{rep['effective_prior'][c]:.4g}", f"{rep['bias_init'][c]:.4g}",
                      f"{rep['prior_correction'][c]:+.4g}")
        console.print(t)
    t = Table(title="feature scales")
    for h in ("column", "mean", "std", "standardize?"):
        t.add_column(h, justify="left" if h == "column" else "right")
    for f in rep["feature_scales"]:
        t.add_row(f["column"], f"{f['mean']:.4g}", f"{f['std']:.4g}",
                  "yes" if f["needs_standardizing"] else "")
    console.print(t)


@app.command("fit")
@clean_errors
def fit_cmd(data: Path = typer.Argument(..., help="CSV, Parquet or NPZ file."),
            target: str = typer.Option(..., help="The column to predict."),
            out: Path = typer.Option(..., help="Model folder to write."),
            task: str = typer.Option(None), epochs: int = typer.Option(30),
            batch_size: int = typer.Option(64),
            lr: str = typer.Option("auto", help="A number, or auto: Leslie Smith's LR range "
                                   "test on the training rows (see doctor)."),
            seed: int = typer.Option(0),
            resume: bool = typer.Option(False, help="Continue from the last checkpoint."),
            nproc: int = typer.Option(1, help="Processes to train on, started by torchrun "
                                      "(gloo on CPU, NCCL on GPUs)."),
            balance: str = typer.Option("logit_adjust", help=BALANCE_HELP),
            standardize: bool = typer.Option(True, help="Standardize each feature column "
                                             "(statistics of the training rows; saved in "
                                             "the model)."),
            class_bias: bool = typer.Option(False, "--class-bias", help="Also fit one bias "
                                            "a class on the held-out rows, so each class's "
                                            "mean probability matches its rate (needs tens of "
                                            "held-out rows of every class)."),
            device: str = typer.Option("auto", help="auto (this rank's GPU, else CUDA, "
                                       "MPS, CPU), cpu, cuda, cuda:N, mps."),
            precision: str = typer.Option("32", help="32, bf16 or 16 (GPU)."),
            cache_dir: Path = typer.Option(None, help="Keep the encoded table here (memory-"
                                           "mapped, reused while the file is unchanged); "
                                           "default: OUT.partial/, removed at the end."),
            overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
            quiet: bool = typer.Option(False, "--quiet")) -> None:
    """Train a tabular MLP with the default tricks and save it (weights, standardizer, labels,
    schema). Checkpoints go to OUT.partial/ until the model is complete."""
    from . import distributed
    from .loop.inputs import check_precision, resolve_device
    from .model_io import check_fit_output, partial_folder, train_and_save

    _check_common(epochs=epochs, batch_size=batch_size, task=task)
    lr = _lr_or_auto(lr)
    check_choice("--balance", balance, BALANCE_CHOICES)
    check_int("--nproc", nproc, 1)
    try:
        launcher = "LOCAL_RANK" not in os.environ
        with warnings.catch_warnings():
            if launcher:  # it only checks: its ranks say the warning
                warnings.simplefilter("ignore")
            where = resolve_device(device, nproc if launcher else None)
        check_precision(precision, where)
    except ValueError as err:
        raise ValueError(f"--{err}") from None
    if cache_dir is not None:
        from .files import check_writable_folder
        check_writable_folder(cache_dir, "--cache-dir")
    if batch_size % nproc:
        raise ValueError(f"--batch-size: {batch_size} is not divisible by --nproc {nproc}")
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        from .files import mark_folder, remove_if_unused, run_lock
        from .tabular import scan_for_training

        check_fit_output(data, out, overwrite)
        scan_for_training(data, target, task)  # every data error once, before any rank
        args = ["fit", str(data), "--target", target, "--out", str(out), "--epochs", str(epochs),
                "--batch-size", str(batch_size), "--lr", str(lr), "--seed", str(seed),
                "--balance", balance, "--device", device, "--precision", precision,
                "--standardize" if standardize else "--no-standardize"]
        args += ["--cache-dir", str(cache_dir)] if cache_dir else []
        args += ["--class-bias"] if class_bias else []
        args += (["--task", task] if task else []) + (["--resume"] if resume else []) + (
            ["--quiet"] if quiet else []) + (["--overwrite"] if overwrite else [])
        mark_folder(partial_folder(out), "fit")
        try:
            with run_lock(partial_folder(out)):  # held here for the ranks (train_and_save)
                code = _torchrun(nproc, args)
        finally:
            remove_if_unused(partial_folder(out))
        raise typer.Exit(code)
    distributed.init_from_env(where)
    try:
        result = train_and_save(data, target, out, task=task, epochs=epochs,
                                batch_size=batch_size, lr=lr, seed=seed, resume=resume,
                                log=_log(quiet), overwrite=overwrite,
                                lock=os.environ.get(LOCK_HELD) != "1",
                                balance=None if balance == "none" else balance,
                                standardize=standardize, class_bias=class_bias,
                                device=device, precision=precision, cache=cache_dir)
        if distributed.rank() == 0:
            if result.best_epoch:
                by = ("calibrated validation loss" if result.task == "classification"
                      else "validation loss")
                kept = (f"the best epoch by {by}: {result.best_epoch} of "
                        f"{len(result.history.epochs)}, {result.best_value:.4f}")
            elif "val_loss" in result.history.epochs[-1]:
                kept = "the last epoch: the validation loss was never finite"
            else:
                kept = "the last epoch: nothing held out to validate"
            typer.echo(f"model written to {out} ({kept})")
    except KeyboardInterrupt:
        if distributed.rank() == 0 and partial_folder(out).is_dir():
            typer.echo(f"interrupted: checkpoints are kept in {partial_folder(out)}; run the "
                       "same command with --resume to continue", err=True)
        elif distributed.rank() == 0:
            typer.echo("interrupted before the first checkpoint; nothing was written", err=True)
        raise typer.Exit(130) from None
    finally:
        distributed.shutdown()


BENCHMARKS = ("oversampling", "standardize", "centralize", "glm", "plateau", "loop_overhead",
              "outcome", "integrations", "big_table", "glm_stream")
LOCK_HELD = "BAGOFTRICKS_LOCK_HELD"  # set for the ranks when the launching process locks


def _torchrun(nproc: int, args: list[str]) -> int:
    """Run ``bagoftricks ARGS`` on ``nproc`` local processes through torchrun (in this
    process, so a failed rank's exit code comes back without the launcher's traceback)."""
    import logging
    import socket

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ[LOCK_HELD] = "1"
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    config = get_args_parser().parse_args(
        ["--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port",
         str(port), "-m", "bagoftricks.cli", *args])
    try:
        run(config)
    except ChildFailedError as err:
        return max(f.exitcode for f in err.failures.values())
    return 0


@app.command()
@clean_errors
def predict(model_dir: Path = typer.Argument(..., help="A folder written by fit."),
            data: Path = typer.Argument(..., help="CSV, Parquet or NPZ file."),
            out: Path = typer.Option(..., help="Predictions CSV to write."),
            prior: str = typer.Option("true", help="The class prior the probabilities hold "
                                      "under: true (the training data's), balanced, or "
                                      "'name=p,name=p' (a deployment prior)."),
            overwrite: bool = typer.Option(False, "--overwrite",
                                           help="Replace OUT even if predict did not "
                                           "write it.")) -> None:
    """Predict with a saved model; the columns must match its schema."""
    from .files import check_output_file
    from .model_io import is_predictions_file, predict_file

    check_output_file(out, inputs=[data, model_dir], ours=is_predictions_file,
                      overwrite=overwrite)
    n = predict_file(model_dir, data, out, prior)
    typer.echo(f"{n} predictions written to {out}")


@app.command()
@clean_errors
def glm(data: Path = typer.Argument(..., help="CSV, Parquet or NPZ file."),
        target: str = typer.Option(..., help="The column to predict."),
        family: str = typer.Option("binomial", help="gaussian, binomial, poisson, gamma, "
                                   "inverse_gaussian, negative_binomial, tweedie."),
        link: str = typer.Option(None, help="Link (default: canonical)."),
        class_weight: str = typer.Option(None, help="balanced (binomial only)."),
        alpha: float = typer.Option(0.0, help="L2 penalty."),
        weight: str = typer.Option(None, help="Column of variance weights."),
        offset: str = typer.Option(None, help="Column added to the linear predictor."),
        freq_weight: str = typer.Option(None, help="Column of frequency weights (counts)."),
        scale: str = typer.Option(None, help="Dispersion: X2, dev or a number (default: "
                                  "1 for binomial and Poisson, else X2)."),
        nproc: int = typer.Option(1, help="Processes (torchrun, gloo on CPU): each reads "
                                  "its share of the record batches.")) -> None:
    """Fit a GLM by IRLS, streaming the file by record batches (one pass per iteration),
    and print its summary with the dispersion and covariance used."""
    from . import distributed
    from .glm_table import stream_fit, task_of

    check_choice("--family", family, ("gaussian", "binomial", "poisson", "gamma",
                                      "inverse_gaussian", "negative_binomial", "tweedie"))
    if class_weight is not None:
        check_choice("--class-weight", class_weight, ("balanced",))
    check_float("--alpha", alpha)
    check_int("--nproc", nproc, 1)
    if scale is not None and scale not in ("X2", "dev"):
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(f"--scale: expected X2, dev or a number, got {scale!r}") from None
        check_float("--scale", scale, positive=True)
    columns = {"--weight": weight, "--offset": offset, "--freq-weight": freq_weight}
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        from .tabular import scan_for_training

        scan_for_training(data, target, task_of(family))  # every data error, before any rank
        args = ["glm", str(data), "--target", target, "--family", family, "--alpha",
                str(alpha)]
        for flag, value in {"--link": link, "--class-weight": class_weight,
                            "--scale": scale, **columns}.items():
            args += [flag, str(value)] if value is not None else []
        raise typer.Exit(_torchrun(nproc, args))
    distributed.init_from_env()
    try:
        model, lines = stream_fit(data, target, family, link=link, alpha=alpha,
                                  class_weight=class_weight, scale=scale, columns=columns)
        if distributed.rank() == 0:
            for line in lines:
                typer.echo(line)
            typer.echo(model.summary())
    finally:
        distributed.shutdown()


@app.command()
@clean_errors
def bench(only: str = typer.Option(None, help="One benchmark: oversampling, standardize, "
                                   "centralize, glm, plateau.")) -> None:
    """Run the benchmarks/ suite (a source checkout) and print the side-by-side tables."""
    if only is not None:
        check_choice("--only", only, BENCHMARKS)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
    if not script.exists():
        raise FileNotFoundError("benchmarks/: not found; run from a source checkout")
    result = subprocess.run([sys.executable, str(script), *([only] if only else [])])
    if result.returncode:
        raise typer.Exit(result.returncode)


if __name__ == "__main__":
    app()
