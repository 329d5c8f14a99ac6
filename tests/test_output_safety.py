"""Nothing a user owns is ever deleted: output folders, input files, locks, full disks."""

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bagoftricks.cli import app
from bagoftricks.files import (
    MARKER,
    atomic_folder,
    atomic_save,
    check_output_folder,
    run_lock,
)

runner = CliRunner()


@pytest.fixture
def data_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=(X[:, 0] > 0.5).astype(int))
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_line_error(result, *needles):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _fit(data, out, *extra):
    return runner.invoke(app, ["fit", str(data), "--target", "y", "--out", str(out),
                               "--epochs", "1", "--quiet", *extra])


@pytest.mark.parametrize("command", ["fit", "compare", "demo"])
def test_a_folder_of_user_files_is_refused_before_any_work(data_csv, tmp_path, command):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(out)
    args = {"fit": ["fit", str(data_csv), "--target", "y"],
            "compare": ["compare", str(data_csv), "--target", "y", "--epochs", "1"],
            "demo": ["demo", "--dataset", "digits-zipf", "--epochs", "1"]}[command]
    result = runner.invoke(app, [*args, "--out", str(out), "--quiet"])
    _one_line_error(result, str(out), "--overwrite")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "mine"]  # nothing else


def test_overwrite_replaces_a_foreign_folder_and_reruns_need_no_flag(data_csv, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("x")
    assert _fit(data_csv, out, "--overwrite").exit_code == 0
    assert not (out / "old.txt").exists() and (out / MARKER).exists()
    assert _fit(data_csv, out).exit_code == 0  # written by fit: replaced without the flag
    result = runner.invoke(app, ["compare", str(data_csv), "--target", "y", "--epochs", "1",
                                 "--out", str(out), "--quiet"])
    _one_line_error(result, "not written by 'bagoftricks compare'")  # another command's
    assert (out / "model.pt").exists()


def test_an_empty_folder_is_a_valid_output(data_csv, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert _fit(data_csv, out).exit_code == 0 and (out / "model.pt").exists()


@pytest.mark.parametrize("where", [".", "cwd", "..", "input", "input-folder"])
def test_the_current_folder_and_the_input_are_never_an_output(data_csv, tmp_path,
                                                             monkeypatch, where):
    work = tmp_path / "project"
    (work / "src").mkdir(parents=True)
    (work / "src" / "code.py").write_text("print(1)")
    data = work / "data.csv"
    shutil.copy(data_csv, data)
    monkeypatch.chdir(work)
    out = {".": ".", "cwd": str(work), "..": "..", "input": str(data),
           "input-folder": str(work)}[where]
    before = _snapshot(tmp_path)
    for flags in ([], ["--overwrite"]):  # not even with --overwrite
        _one_line_error(_fit(data, out, *flags), "--out")
    assert _snapshot(tmp_path) == before
    assert not list(tmp_path.glob(".*tmp*")) and not list(work.glob(".*tmp*"))


def test_a_file_is_never_turned_into_a_folder(data_csv, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    _one_line_error(_fit(data_csv, notes, "--overwrite"), "not a folder")
    assert notes.read_text() == "keep me"


def test_predict_never_writes_over_its_input(data_csv, tmp_path):
    model = tmp_path / "model"
    assert _fit(data_csv, model).exit_code == 0
    before = data_csv.read_bytes()
    result = runner.invoke(app, ["predict", str(model), str(data_csv), "--out", str(data_csv)])
    _one_line_error(result, "--out", "input")
    assert data_csv.read_bytes() == before
    result = runner.invoke(app, ["predict", str(model), str(data_csv), "--out",
                                 str(model / "model.pt")])
    _one_line_error(result, "--out")
    result = runner.invoke(app, ["predict", str(model), str(data_csv), "--out", str(tmp_path)])
    _one_line_error(result, "is a folder")


def test_a_second_run_on_a_locked_folder_is_refused_and_touches_nothing(data_csv, tmp_path):
    # The lock is an flock held by this process, as a first run would hold it; the second
    # run is another process (the CLI in a subprocess).
    out = tmp_path / "model"
    partial = Path(f"{out}.partial")
    partial.mkdir()
    (partial / MARKER).write_text('{"command": "fit"}')
    (partial / "checkpoint.pt").write_bytes(b"first run's checkpoint")
    with run_lock(partial):
        proc = subprocess.run([sys.executable, "-m", "bagoftricks.cli", "fit", str(data_csv),
                               "--target", "y", "--out", str(out), "--epochs", "1", "--quiet"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another run" in lines[0] and str(os.getpid()) in lines[0]
    assert (partial / "checkpoint.pt").read_bytes() == b"first run's checkpoint"
    assert not out.exists()


def test_a_failed_write_keeps_the_previous_output_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "report"
    atomic_folder(out, lambda f: (f / "a.txt").write_text("first"), command="demo")

    def fails(folder):
        (folder / "a.txt").write_text("half")
        raise RuntimeError("killed while writing")
    with pytest.raises(RuntimeError):
        atomic_folder(out, fails, command="demo")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def _mount_tmpfs(path: Path, options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount")
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode:
        pytest.skip(f"mount is not allowed here: {done.stderr.decode().strip()}")


def _unmount(disk):
    """Unmount once the in-process run's memory maps of its table cache are collected
    (a failed command's traceback keeps them alive in a reference cycle)."""
    gc.collect()
    subprocess.run(["umount", str(disk)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=96k")
    yield disk
    _unmount(disk)


@pytest.fixture
def read_only_disk(tmp_path):
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "ro,size=64k")
    yield disk
    _unmount(disk)


def test_a_full_disk_says_so_and_leaves_no_temporary_file(small_disk):
    with pytest.raises(OSError, match="no space left on device.*big.pt"):
        atomic_save({"w": torch.zeros(100_000)}, small_disk / "big.pt")
    assert list(small_disk.iterdir()) == []


def test_fit_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(data_csv, small_disk):
    big = pd.read_csv(data_csv)
    for j in range(40):  # a wider model: its checkpoint no longer fits in 96 kB
        big[f"x{j}"] = big["a"] * j
    wide = small_disk.parent / "wide.csv"
    big.to_csv(wide, index=False)
    result = _fit(wide, small_disk / "model")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("epoch")]
    assert len(errors) == 1 and "no space left on device" in errors[0], result.stderr
    leftovers = [p for p in small_disk.rglob("*") if "tmp" in p.name]
    assert leftovers == []


def test_a_read_only_folder_is_one_line(data_csv, read_only_disk):
    _one_line_error(_fit(data_csv, read_only_disk / "model"), "Read-only file system")


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 8))
    data = tmp_path / "big.csv"
    pd.DataFrame(X).rename(columns=str).assign(y=(X[:, 0] > 0).astype(int)).to_csv(data,
                                                                                  index=False)
    out = tmp_path / "model"
    proc = subprocess.Popen([sys.executable, "-m", "bagoftricks.cli", "fit", str(data),
                             "--target", "y", "--out", str(out), "--epochs", "200", "--quiet"],
                            stderr=subprocess.PIPE, text=True,
                            # a shell running us in the background ignores SIGINT, and its
                            # children inherit that: restore the default for this one
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = Path(f"{out}.partial") / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and str(checkpoint.parent) in last and "--resume" in last
    assert "Traceback" not in err and checkpoint.exists()


def test_check_output_folder_accepts_its_own_marker(tmp_path):
    out = tmp_path / "r"
    atomic_folder(out, lambda f: None, command="demo")
    assert check_output_folder(out, command="demo") == out
    with pytest.raises(ValueError, match="not written by 'bagoftricks fit'"):
        check_output_folder(out, command="fit")


def test_predict_replaces_its_own_file_but_no_other(data_csv, tmp_path):
    model = tmp_path / "model"
    assert _fit(data_csv, model).exit_code == 0
    preds = tmp_path / "preds.csv"
    for _ in range(2):  # a predictions file it wrote is replaced without a flag
        assert runner.invoke(app, ["predict", str(model), str(data_csv), "--out",
                                   str(preds)]).exit_code == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    result = runner.invoke(app, ["predict", str(model), str(data_csv), "--out", str(notes)])
    _one_line_error(result, "--overwrite")
    assert notes.read_text() == "mine"
    assert runner.invoke(app, ["predict", str(model), str(data_csv), "--out", str(notes),
                               "--overwrite"]).exit_code == 0


def test_temporary_names_never_touch_a_sibling_that_already_exists(tmp_path):
    out = tmp_path / "report"
    stale = [tmp_path / f".report.tmp-{os.getpid()}", tmp_path / f".report.old-{os.getpid()}"]
    for folder in stale:  # what the former pid-based names would have deleted
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    atomic_folder(out, lambda f: (f / "a.txt").write_text("x"), command="demo")
    atomic_folder(out, lambda f: (f / "a.txt").write_text("y"), command="demo")
    assert (out / "a.txt").read_text() == "y"
    assert all((folder / "keep.txt").read_text() == "mine" for folder in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report", *(f.name for f in stale)])
