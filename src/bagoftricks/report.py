"""The written report: report.md and PNG plots, written atomically into one folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .files import atomic_folder  # noqa: E402
from .loop import History  # noqa: E402


def plot_losses(runs: dict[str, History], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, h) in enumerate(runs.items()):
        epochs = h.series("epoch")
        ax.plot(epochs, h.series("train_loss"), color=f"C{i}", ls="--", label=f"{name} train")
        if h.series("val_loss")[0] is not None:
            ax.plot(epochs, h.series("val_loss"), color=f"C{i}", label=f"{name} validation")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="Loss curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lr(runs: dict[str, History], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, (name, h) in enumerate(runs.items()):
        ax.step(h.series("epoch"), h.series("lr"), where="post", color=f"C{i}", label=name)
    ax.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="LR schedule")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_recall(runs: dict[str, History], class_names: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(6, len(class_names) * 0.6), 3.5))
    width = 0.8 / len(runs)
    for i, (name, h) in enumerate(runs.items()):
        recall = [r if r is not None else 0.0 for r in h.epochs[-1]["recall"]]
        ax.bar([k + i * width for k in range(len(recall))], recall, width, label=name,
               color=f"C{i}")
    ax.set_xticks([k + width * (len(runs) - 1) / 2 for k in range(len(class_names))],
                  class_names)
    ax.set(ylabel="recall (last epoch)", ylim=(0, 1), title="Per-class recall")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_report(out: Path, title: str, description: str, runs: dict[str, History],
                 header: list[str], rows: list[list[str]],
                 class_names: list[str] | None = None, *, command: str) -> Path:
    """report.md with the comparison table and the plots, written atomically into ``out``
    and marked as written by ``command``."""
    def write(folder: Path) -> None:
        plot_losses(runs, folder / "loss.png")
        plot_lr(runs, folder / "lr.png")
        images = ["loss.png", "lr.png"]
        if class_names and "recall" in runs[next(iter(runs))].epochs[-1]:
            plot_recall(runs, class_names, folder / "recall.png")
            images.append("recall.png")
        text = [f"# {title}", "", description, "", markdown_table(header, rows), ""]
        text += [f"![{name}]({name})" for name in images]
        (folder / "report.md").write_text("\n".join(text) + "\n")
    return atomic_folder(out, write, command=command)
