"""The ``bagoftricks`` command."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from . import __version__

app = typer.Typer(help="Tricks that make neural nets train faster and correctly.",
                  no_args_is_help=True, add_completion=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bagoftricks {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Tricks that make neural nets train faster and correctly."""


@app.command()
def demo(steps: int = typer.Option(100, help="Training steps per run."),
         seed: int = typer.Option(0, help="Seed of the model and the batches.")) -> None:
    """Bias initialization on imbalanced bundled data: step-0 and step-N loss."""
    from .demo import bias_init_table

    table = Table(title=f"Last-layer bias initialization (MLP, Adam 1e-3, {steps} steps of 32)")
    for col in ("dataset", "kind", "label-only", "step0 b=0", "step0 init",
                f"step{steps} b=0", f"step{steps} init"):
        table.add_column(col, justify="left" if col in ("dataset", "kind") else "right")
    for r in bias_init_table(steps, seed):
        table.add_row(r.dataset, r.kind, *(f"{v:.4f}" for v in (
            r.best_label_only, r.step0_zero_bias, r.step0_init_bias, r.final_zero_bias,
            r.final_init_bias)))
    console = Console()
    console.width = max(console.width, 110)
    console.print(table)
