"""``bagoftricks glm``: a GLM fitted on a CSV/Parquet/NPZ file streamed by record
batches (``GLM.fit_blocks``: one pass per IRLS iteration, never the whole file in
memory), with weight, offset and frequency-weight columns; under torchrun each rank
reads its share of the batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import distributed
from .linear import GLM
from .tabular import _float, encode, iter_batches, scan_for_training


def task_of(family: str) -> str:
    """The table's task for a GLM family: binomial reads classes, the others numbers."""
    return "classification" if family == "binomial" else "regression"


def stream_fit(data: Path, target: str, family: str, *, link, alpha: float, class_weight,
               scale, columns: dict) -> tuple[GLM, list[str]]:
    """The fitted model and the lines to print before its summary. ``columns`` maps
    ``--weight``/``--offset``/``--freq-weight`` to a column name or None."""
    s = scan_for_training(data, target, task_of(family))
    if family == "binomial" and len(s.schema.classes) != 2:
        raise ValueError(f"--target: binomial needs 2 classes, {target!r} has "
                         f"{len(s.schema.classes)}")
    special = {flag: name for flag, name in columns.items() if name is not None}
    for flag, name in special.items():
        if name == target or name not in s.schema.numeric:
            raise ValueError(f"{flag}: no numeric column {name!r} in {Path(data).name}"
                             + (" (it is the target)" if name == target else ""))
    features = dataclasses.replace(s.schema, numeric=[
        c for c in s.schema.numeric if c not in special.values()])
    # With an intercept, a constant column and a full set of one-hot columns are
    # collinear: drop constants and each string column's first level (the reference).
    names = features.feature_names()
    dropped = set(s.constant) | {f"{c}={v[0]}" for c, v in features.categorical.items() if v}
    keep = [i for i, n in enumerate(names) if n not in dropped and n.split("=")[0]
            not in s.constant]
    lines = []
    if len(keep) < len(names):
        lines.append(f"left out (constant, or the reference level of a string column): "
                     f"{', '.join(n for i, n in enumerate(names) if i not in set(keep))}")
    if family == "binomial":
        lines.append(f"modelling P({target} = {s.schema.classes[1]})")
    per_class = None
    if class_weight == "balanced":  # scikit-learn's n / (K n_c), from the scan's counts
        counts = np.array([s.class_counts[str(c)] for c in s.schema.classes], float)
        per_class = counts.sum() / (len(counts) * counts)
    wanted = features.numeric + list(features.categorical) + [target]
    rank, world = distributed.rank(), distributed.world_size()

    def blocks():
        for i, batch in enumerate(iter_batches(data)):
            if i % world != rank:
                continue
            X, y = encode(batch.select(wanted), features)
            extra = {flag: _column(batch, name, flag) for flag, name in special.items()}
            w = extra.get("--weight")
            if per_class is not None:
                w = per_class[y.astype(np.int64)] * (1.0 if w is None else w)
            yield (X[:, keep].astype(np.float64), y.astype(np.float64), w,
                   extra.get("--offset"), extra.get("--freq-weight"))

    model = GLM(family, link=link, alpha=alpha, scale=scale)
    model.fit_blocks(blocks, feature_names=[names[i] for i in keep])
    return model, lines


def _column(batch: pa.RecordBatch, name: str, flag: str) -> np.ndarray:
    """A weight or offset column as float64, with one clear error for a bad value."""
    values = _float(batch.column(name)).astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{flag}: column {name!r} has missing, NaN or infinite values")
    if flag != "--offset" and (values < 0).any():
        raise ValueError(f"{flag}: column {name!r} has a negative value")
    return values
