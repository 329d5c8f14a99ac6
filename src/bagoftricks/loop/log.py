"""Progress output of the loop: a rich bar per epoch on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys


class Logger:
    """``mode``: ``"auto"`` (a bar on a terminal, else lines), ``"bar"``, ``"lines"`` or
    ``"none"``. Lines go to stderr, one per epoch."""

    def __init__(self, mode: str, epochs: int) -> None:
        if mode not in ("auto", "bar", "lines", "none"):
            raise ValueError(f"log: expected 'auto', 'bar', 'lines' or 'none', got {mode!r}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.epochs, self.progress = mode, epochs, None

    def start(self, epoch: int, steps: int) -> None:
        if self.mode == "bar":
            from rich.progress import Progress
            self.progress = Progress(transient=True)
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def end(self, record: dict) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.mode in ("bar", "lines"):
            train, val = record.get("train_loss"), record.get("val_loss")
            train = f"{train:.4f}" if train is not None else "-"
            val = f"{val:.4f}" if val is not None else "-"
            print(f"epoch {record['epoch']:>3d}/{self.epochs}  train {train}  val {val}  "
                  f"lr {record['lr']:.3g}  {record['seconds']:.2f}s", file=sys.stderr,
                  flush=True)
