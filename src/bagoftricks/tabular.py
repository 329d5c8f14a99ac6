"""Tabular files for the command line: CSV and Parquet read in record batches, and NPZ.

One streaming pass (``scan``) infers the schema and gathers every statistic ``doctor``
reports, so a file larger than memory works; ``load`` then materializes the encoded
float32 features for training. String columns are one-hot encoded up to
``MAX_CATEGORIES`` distinct values; a column with more is a clear error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .standardize import RunningStandardizer

MAX_CATEGORIES = 32       # one-hot columns per string feature at most
MAX_CLASSES = 50          # integer targets with at most this many values are classes
BATCH_ROWS = 65_536


def iter_batches(path: str | Path, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of a ``.csv``, ``.parquet`` or ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"DATA: no such file: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"DATA: {path.name} is empty")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pyarrow.csv as pcsv
        try:
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22))
        except pa.ArrowInvalid as err:
            raise ValueError(f"DATA: cannot read {path.name} as CSV ({err})") from None
        yield from reader
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            table = pa.table({k: npz[k] for k in npz.files if npz[k].ndim == 1})
        yield from table.to_batches(batch_rows)
    else:
        raise ValueError(f"DATA: unsupported file type {suffix!r} (use .csv, .parquet, .npz)")


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


@dataclass
class Schema:
    """Columns, encodings and the label mapping of a dataset; saved with a model."""

    target: str
    task: str                                   # "classification" | "regression"
    numeric: list[str]
    categorical: dict[str, list[str]]
    classes: list | None = None                 # original label values, index = class id
    fill: dict[str, float] = field(default_factory=dict)  # NaN replacement (the mean)

    def feature_names(self) -> list[str]:
        return self.numeric + [f"{c}={v}" for c, vs in self.categorical.items() for v in vs]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Schema:
        return cls(**json.loads(path.read_text()))


@dataclass
class Scan:
    """What one pass over the file found."""

    schema: Schema
    rows: int
    class_counts: dict | None
    target_nan: int
    nonfinite: dict[str, int]
    constant: list[str]
    standardizer: RunningStandardizer | None


def scan(path, target: str, task: str | None = None) -> Scan:
    """Infer the schema and gather the statistics in one streaming pass."""
    batches = iter_batches(path)
    first = next(batches, None)
    if first is None or first.num_rows == 0 and first.num_columns == 0:
        raise ValueError(f"DATA: {Path(path).name} is empty")
    columns = first.schema.names
    if target not in columns:
        raise ValueError(f"--target: no column {target!r} in {Path(path).name} "
                         f"(columns: {', '.join(columns[:20])})")
    types = {n: first.schema.field(n).type for n in columns}
    numeric = [c for c in columns if c != target and _is_numeric(types[c])]
    strings = [c for c in columns if c != target and not _is_numeric(types[c])]
    cats: dict[str, set] = {c: set() for c in strings}
    labels: dict = {}
    target_nan, rows = 0, 0
    nonfinite = dict.fromkeys(numeric, 0)
    lo, hi = dict.fromkeys(numeric, math.inf), dict.fromkeys(numeric, -math.inf)
    std = RunningStandardizer(nan_policy="omit") if numeric else None
    numeric_target = _is_numeric(types[target])
    float_target = pa.types.is_floating(types[target])
    for batch in _chain(first, batches):
        rows += batch.num_rows
        t = batch.column(target)
        target_nan += t.null_count + (int(pc.sum(pc.is_nan(t)).as_py() or 0)
                                      if pa.types.is_floating(t.type) else 0)
        if len(labels) <= MAX_CLASSES or not numeric_target:
            for v, n in zip(*np.unique(np.asarray(t.drop_null().to_numpy(zero_copy_only=False)),
                                       return_counts=True), strict=True):
                if not (isinstance(v, float) and math.isnan(v)):
                    labels[v.item() if hasattr(v, "item") else v] = labels.get(
                        v.item() if hasattr(v, "item") else v, 0) + int(n)
        for c in strings:
            cats[c].update(batch.column(c).drop_null().to_pylist())
            if len(cats[c]) > MAX_CATEGORIES:
                raise ValueError(f"DATA: string column {c!r} has more than {MAX_CATEGORIES} "
                                 "distinct values, too many to one-hot encode")
        if numeric:
            block = np.column_stack([_float(batch.column(c)) for c in numeric])
            bad = ~np.isfinite(block)
            for j, c in enumerate(numeric):
                nonfinite[c] += int(bad[:, j].sum())
                col = block[~bad[:, j], j]
                if col.size:
                    lo[c], hi[c] = min(lo[c], col.min()), max(hi[c], col.max())
            std.update(np.where(bad, np.nan, block))
    if rows == 0:
        raise ValueError(f"DATA: {Path(path).name} has no rows")
    if target_nan:
        raise ValueError(f"--target: column {target!r} has {target_nan} missing/NaN values")
    if task is None:
        whole = numeric_target and not float_target
        task = "classification" if not numeric_target or (whole and len(labels) <= MAX_CLASSES) \
            else "regression"
        if float_target and len(labels) <= 2 and set(labels) <= {0.0, 1.0}:
            task = "classification"
    if task == "regression" and not numeric_target:
        raise ValueError(f"--target: column {target!r} is not numeric, so it cannot be "
                         "regressed (use --task classification)")
    classes = None
    if task == "classification":
        if len(labels) < 2:
            raise ValueError(f"--target: column {target!r} has a single class "
                             f"({next(iter(labels), None)!r}), nothing to learn")
        classes = sorted(labels)
    fill = {}
    if std is not None:
        means = std.mean.tolist()
        fill = {c: (m if math.isfinite(m) else 0.0) for c, m in zip(numeric, means,
                                                                   strict=True)}
    schema = Schema(target, task, numeric, {c: sorted(map(str, v)) for c, v in cats.items()},
                    classes, fill)
    constant = [c for c in numeric if lo[c] >= hi[c]]
    constant += [c for c, v in schema.categorical.items() if len(v) <= 1]
    return Scan(schema, rows, {str(k): labels[k] for k in classes} if classes else None,
                target_nan, nonfinite, constant, std)


def _chain(first, rest):
    yield first
    yield from rest


def _float(col: pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.float64()).fill_null(float("nan")).to_numpy(
        zero_copy_only=False), dtype=np.float64)


def encode(batch: pa.RecordBatch, schema: Schema, with_target: bool = True):
    """Float32 features (NaN filled with the training mean, one-hot strings) and labels."""
    names = batch.schema.names
    needed = schema.numeric + list(schema.categorical)
    missing = [c for c in needed if c not in names]
    extra = [c for c in names if c not in needed and c != schema.target]
    if missing or extra:
        raise ValueError("DATA: columns do not match the model's schema"
                         + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; extra: {', '.join(extra)}" if extra else ""))
    parts = []
    for c in schema.numeric:
        v = _float(batch.column(c))
        parts.append(np.where(np.isfinite(v), v, schema.fill.get(c, 0.0))[:, None])
    for c, values in schema.categorical.items():
        col = np.asarray(batch.column(c).cast(pa.string()).fill_null("").to_pylist(),
                         dtype=object)
        parts.append(np.stack([col == v for v in values], 1).astype(np.float64)
                     if values else np.zeros((batch.num_rows, 0)))
    X = np.concatenate(parts, 1).astype(np.float32) if parts else np.zeros(
        (batch.num_rows, 0), np.float32)
    if not with_target or schema.target not in names:
        return X, None
    t = batch.column(schema.target)
    if schema.task == "regression":
        return X, _float(t).astype(np.float32)
    raw = t.to_pylist()
    lookup = {v: i for i, v in enumerate(schema.classes)}
    unknown = {v for v in raw if v not in lookup}
    if unknown:
        raise ValueError(f"--target: labels {sorted(map(str, unknown))[:5]} were not seen "
                         "in training")
    return X, np.array([lookup[v] for v in raw], dtype=np.int64)


def load(path, schema: Schema, with_target: bool = True):
    """All rows encoded: ``(X float32 (n, p), y or None)``."""
    xs, ys = [], []
    for batch in iter_batches(path):
        X, y = encode(batch, schema, with_target)
        xs.append(X)
        ys.append(y)
    X = np.concatenate(xs) if xs else np.zeros((0, len(schema.feature_names())), np.float32)
    y = np.concatenate(ys) if with_target and ys and ys[0] is not None else None
    return X, y


def read(path, target: str, task: str | None = None):
    """``scan`` then ``load``: ``(Scan, X, y)`` for training on a file."""
    s = scan(path, target, task)
    X, y = load(path, s.schema)
    return s, X, y
