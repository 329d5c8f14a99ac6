"""Tabular files for the command line: CSV and Parquet read in record batches, and NPZ.

One streaming pass (``scan``) infers the schema and gathers every statistic ``doctor``
reports, so a file larger than memory works; ``load`` then materializes the encoded
float32 features for training. String columns are one-hot encoded up to
``MAX_CATEGORIES`` distinct values; a column with more is a clear error.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .standardize import RunningStandardizer

MAX_CATEGORIES = 32       # one-hot columns per string feature at most
MAX_CLASSES = 50          # integer targets with at most this many values are classes
BATCH_ROWS = 65_536
FLOAT32_MAX = float(np.finfo(np.float32).max)


def iter_batches(path: str | Path, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of a ``.csv``, ``.parquet`` or ``.npz`` file.

    Raises ``ValueError`` naming the problem for a missing, empty or non-regular file,
    binary content in a CSV, duplicate column names, a cell that does not parse as its
    column's type (with the column and data row), and NPZ arrays of more than 2-D."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"DATA: no such file: {path}")
    if not path.is_file():
        raise ValueError(f"DATA: {path} is {'a folder' if path.is_dir() else 'not a regular file'}"
                         ", not a data file")
    if path.stat().st_size == 0:
        raise ValueError(f"DATA: {path.name} is empty")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_batches(path)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq
        try:
            # pre_buffer=False: the default read-ahead keeps every row group's raw bytes
            # for the whole scan (a 1.8 GB file held 1.9 GB); buffer_size: a column chunk
            # is read page by page through 1 MiB, not whole (0.37 -> 0.21 GiB for 1e6-row
            # row groups of 21 float32 columns)
            reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            _check_names(reader.schema_arrow.names, path)
            yield from reader.iter_batches(batch_size=batch_rows)
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"DATA: cannot read {path.name} as Parquet ({err})") from None
    elif suffix == ".npz":
        yield from _npz_table(path).to_batches(batch_rows)
    else:
        raise ValueError(f"DATA: unsupported file type {suffix!r} (use .csv, .parquet, .npz)")


def _check_names(names: list[str], path: Path) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"DATA: {path.name} has duplicate column names: "
                         f"{', '.join(sorted(seen))}")


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    with open(path, "rb") as f:
        head = f.read(1 << 14)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        binary = b"\x00" in head
    except UnicodeDecodeError:
        binary = True
    if binary:
        raise ValueError(f"DATA: {path.name} is not a text CSV file (binary content)")
    try:
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22))
    except pa.ArrowInvalid as err:
        raise ValueError(f"DATA: cannot read {path.name} as CSV ({str(err)[:200]})") from None
    _check_names(reader.schema.names, path)
    try:
        yield from reader
    except pa.ArrowInvalid as err:
        raise ValueError(_conversion_error(path, reader.schema, err)) from None


def _conversion_error(path: Path, schema: pa.Schema, err: Exception) -> str:
    """Name the column and data row of a CSV cell that does not parse as its column's
    type (pyarrow inferred the type from the first block and names neither)."""
    import pyarrow.csv as pcsv

    found = re.search(r"column #(\d+)", str(err))
    if not found:
        return f"DATA: cannot read {path.name} as CSV ({str(err)[:200]})"
    field = schema.field(int(found.group(1)))
    options = pcsv.ConvertOptions(column_types={field.name: pa.string()},
                                  include_columns=[field.name])
    row = 0
    for batch in pcsv.open_csv(path, convert_options=options):
        col = batch.column(0)
        for i, value in enumerate(col.to_pylist()):
            if value not in (None, "") and not _parses(value, field.type):
                return (f"DATA: column {field.name!r} holds {value!r} at data row {row + i + 1}, "
                        f"but its first rows made it {field.type}")
        row += batch.num_rows
    return f"DATA: column {field.name!r} does not parse as {field.type} ({str(err)[:120]})"


def _parses(value: str, type_: pa.DataType) -> bool:
    try:
        pa.array([value]).cast(type_)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _npz_table(path: Path) -> pa.Table:
    """An NPZ file's arrays as columns; a 2-D array ``a`` becomes ``a[0]``, ``a[1]``, …"""
    columns = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                a = npz[name]
                if a.ndim == 1:
                    columns[name] = a
                elif a.ndim == 2:
                    columns.update({f"{name}[{j}]": a[:, j] for j in range(a.shape[1])})
                else:
                    raise ValueError(f"DATA: array {name!r} in {path.name} has shape {a.shape}; "
                                     "only 1-D columns and 2-D blocks of columns are read")
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"DATA: cannot read {path.name} as NPZ ({err})") from None
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"DATA: the arrays in {path.name} have different lengths "
                         f"{sorted(lengths)}")
    return pa.table(columns)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_text(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
            or pa.types.is_dictionary(t) and _is_text(t.value_type))


def _bad_values(block: np.ndarray) -> np.ndarray:
    """Cells the model cannot use: NaN, ±inf, or beyond float32's range."""
    return ~np.isfinite(block) | (np.abs(block) > FLOAT32_MAX)


def _looks_numeric(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


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
    nonfinite: dict[str, int]      # per numeric column: NaN, ±inf or beyond float32
    constant: list[str]
    standardizer: RunningStandardizer | None
    target_problems: list[str] = field(default_factory=list)  # mixed types, ID-like
    small_classes: list[str] = field(default_factory=list)    # too few rows to validate


def scan(path, target: str, task: str | None = None) -> Scan:
    """Infer the schema and gather the statistics in one streaming pass."""
    batches = iter_batches(path)
    first = next(batches, None)
    name = Path(path).name
    if first is None:  # (readers yield no batch for a file without rows)
        raise ValueError(f"DATA: {name} is empty")
    columns = first.schema.names
    if target not in columns:
        raise ValueError(f"--target: no column {target!r} in {name} "
                         f"(columns: {', '.join(columns[:20])})")
    types = {n: first.schema.field(n).type for n in columns}
    unusable = [f"{c!r} ({t})" for c, t in types.items() if not (_is_numeric(t) or _is_text(t))]
    if unusable:
        raise ValueError(f"DATA: columns of numbers, booleans or text only; {name} has "
                         f"{', '.join(unusable[:5])}")
    numeric = [c for c in columns if c != target and _is_numeric(types[c])]
    strings = [c for c in columns if c != target and not _is_numeric(types[c])]
    cats: dict[str, set] = {c: set() for c in strings}
    labels: dict = {}
    target_bad, first_bad_row, rows = 0, None, 0
    nonfinite = dict.fromkeys(numeric, 0)
    lo, hi = dict.fromkeys(numeric, math.inf), dict.fromkeys(numeric, -math.inf)
    std = RunningStandardizer(nan_policy="omit") if numeric else None
    numeric_target = _is_numeric(types[target])
    float_target = pa.types.is_floating(types[target])
    for batch in _chain(first, batches):
        t = batch.column(target)
        bad = np.asarray(t.is_null().to_numpy(zero_copy_only=False))
        if float_target:
            bad |= _bad_values(_float(t))
        if bad.any():
            target_bad += int(bad.sum())
            first_bad_row = first_bad_row or rows + int(np.argmax(bad)) + 1
        rows += batch.num_rows
        if len(labels) <= MAX_CLASSES or not numeric_target:
            values = np.asarray(t.drop_null().to_numpy(zero_copy_only=False))
            for v, n in zip(*np.unique(values, return_counts=True), strict=True):
                v = v.item() if hasattr(v, "item") else v
                if not (isinstance(v, float) and not math.isfinite(v)):
                    labels[v] = labels.get(v, 0) + int(n)
        for c in strings:
            cats[c].update(map(str, batch.column(c).drop_null().to_pylist()))
            if len(cats[c]) > MAX_CATEGORIES:
                raise ValueError(f"DATA: string column {c!r} has more than {MAX_CATEGORIES} "
                                 "distinct values, too many to one-hot encode")
        if numeric:
            block = np.column_stack([_float(batch.column(c)) for c in numeric])
            bad = _bad_values(block)
            for j, c in enumerate(numeric):
                nonfinite[c] += int(bad[:, j].sum())
                col = block[~bad[:, j], j]
                if col.size:
                    lo[c], hi[c] = min(lo[c], col.min()), max(hi[c], col.max())
            std.update(np.where(bad, np.nan, block))
    if rows == 0:
        raise ValueError(f"DATA: {name} has no rows")
    if target_bad:
        raise ValueError(f"--target: column {target!r} has {target_bad} missing/NaN/infinite "
                         f"values (first at data row {first_bad_row})")
    problems = _target_problems(target, labels, rows, numeric_target)
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
    schema = Schema(target, task, numeric, {c: sorted(v) for c, v in cats.items()},
                    classes, fill)
    constant = [c for c in numeric if lo[c] >= hi[c]]
    constant += [c for c, v in schema.categorical.items() if len(v) <= 1]
    counts = {str(k): labels[k] for k in classes} if classes else None
    small = [c for c, n in (counts or {}).items() if n < 2]
    return Scan(schema, rows, counts, nonfinite, constant, std, problems, small)


def _target_problems(target: str, labels: dict, rows: int, numeric_target: bool) -> list[str]:
    """What is suspicious about a target column: numbers mixed with text, or an ID."""
    problems = []
    if not numeric_target:
        numbers = [v for v in labels if _looks_numeric(v)]
        if numbers and len(numbers) < len(labels):
            text = [v for v in labels if not _looks_numeric(v)]
            problems.append(f"column {target!r} mixes numbers ({', '.join(map(repr, numbers[:3]))}"
                            f") with text ({', '.join(map(repr, text[:3]))})")
        if len(labels) > MAX_CLASSES and len(labels) >= rows / 2:
            problems.append(f"column {target!r} looks like an ID: {len(labels)} distinct values "
                            f"in {rows} rows")
    return problems


def _chain(first, rest):
    yield first
    yield from rest


def _float(col: pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.float64()).fill_null(float("nan")).to_numpy(
        zero_copy_only=False), dtype=np.float64)


class UnseenCategoryWarning(UserWarning):
    """A string value at prediction time that training never saw."""


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
        parts.append(np.where(_bad_values(v), schema.fill.get(c, 0.0), v)[:, None])
    for c, values in schema.categorical.items():
        col = np.asarray(batch.column(c).cast(pa.string()).fill_null("").to_pylist(),
                         dtype=object)
        unseen = int((~np.isin(col, [*values, ""])).sum())
        if unseen:
            warnings.warn(f"column {c!r}: {unseen} value(s) not seen in training, encoded as "
                          "all zeros", UnseenCategoryWarning, stacklevel=2)
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


def sample(path, schema: Schema, n: int, seed: int = 0):
    """``n`` rows drawn uniformly without replacement (every row when there are fewer),
    encoded, in one streaming pass that holds at most ``n`` plus one batch of them: each
    row gets a seeded random key and the ``n`` smallest keys are kept."""
    rng = np.random.default_rng(seed)
    keys, X, y = np.zeros(0), None, None
    for batch in iter_batches(path):
        Xb, yb = encode(batch, schema)
        keys = np.concatenate([keys, rng.random(len(Xb))])
        X = Xb if X is None else np.concatenate([X, Xb])
        y = yb if y is None else np.concatenate([y, yb])
        keep = np.argsort(keys, kind="stable")[:n]
        keys, X, y = keys[keep], X[keep], y[keep]
    return X, y


def scan_for_training(path, target: str, task: str | None = None) -> Scan:
    """``scan``, refusing what cannot be trained on: a target that mixes numbers with
    text, one that looks like an ID (unless ``task`` was given explicitly), a file with
    no usable feature column."""
    s = scan(path, target, task)
    check_trainable(s, task)
    return s


def check_trainable(s: Scan, task: str | None) -> None:
    """The refusals of ``scan_for_training`` for a scan already made."""
    refused = [p for p in s.target_problems if task is None or "mixes" in p]
    if refused:
        raise ValueError(f"--target: {refused[0]}"
                         + ("; pass --task to train on it anyway" if "ID" in refused[0] else ""))
    if not s.schema.feature_names():
        raise ValueError(f"DATA: no usable feature columns besides {s.schema.target!r} (only "
                         "empty text columns)")


def read(path, target: str, task: str | None = None):
    """``scan_for_training`` then ``load``: ``(Scan, X, y)`` for training on a file."""
    s = scan_for_training(path, target, task)
    X, y = load(path, s.schema)
    return s, X, y
