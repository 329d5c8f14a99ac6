"""The written report: report.md and PNG plots, written atomically into one folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .files import atomic_folder  # noqa: E402
from .loop import History  # noqa: E402


def plot_losses(runs: dict[str, History], path: Path) -> None:
    """Small multiples: one panel per run against the plain run (train dashed,
    validation solid, the first seed), sharing the axes; the legend sits below them."""
    others = [name for name in runs if name != "plain"] or list(runs)
    cols = min(3, len(others))
    rows = -(-len(others) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, others, strict=False):
        pairs = [("plain", "C0"), (name, "C1")] if "plain" in runs and name != "plain" \
            else [(name, "C1")]
        for label, color in pairs:
            h = runs[label]
            ax.plot(h.series("epoch"), h.series("train_loss"), color=color, ls="--")
            if h.series("val_loss")[0] is not None:
                ax.plot(h.series("epoch"), h.series("val_loss"), color=color)
        ax.set(title=name if name == "plain" else f"{name} vs plain", yscale="log")
    for index, ax in enumerate(axes.flat):
        if index >= len(others):
            ax.set_visible(False)
        elif index + cols >= len(others):  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("loss")
    handles = [plt.Line2D([], [], color="C0"), plt.Line2D([], [], color="C1"),
               plt.Line2D([], [], color="gray", ls="--"), plt.Line2D([], [], color="gray")]
    fig.legend(handles, ["plain", "the run named in the panel", "train", "validation"],
               loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if rows == 1 else 0.04, 1, 1))
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
