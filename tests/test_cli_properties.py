"""Property: whatever small table a user brings, doctor / fit / predict end with exit 0 or
2, never a traceback, at most 2 lines on stderr for an error, nothing outside the output
changed and no temporary file left behind."""

import math

import hypothesis.strategies as st
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from hypothesis import HealthCheck, event, given, settings
from typer.testing import CliRunner

from bagoftricks.cli import app

runner = CliRunner()

NAMES = st.sampled_from(["a", "b", "x 1", "ü", "y", "a,b", '"q"', "c", "d", "target"])
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([1e308, -1e308, 0.0, -0.0, 3.5e38, 1e-320]), st.none())


@st.composite
def tables(draw):
    rows = draw(st.one_of(st.integers(0, 3), st.integers(4, 60)))
    kinds = draw(st.lists(st.sampled_from(["float", "int", "bool", "str"]), min_size=1,
                          max_size=4))
    names = [draw(NAMES) for _ in kinds]
    arrays = []
    for kind in kinds:
        if kind == "float":
            values = draw(st.lists(FLOATS, min_size=rows, max_size=rows))
        elif kind == "int":
            values = draw(st.lists(st.one_of(st.integers(-3, 3), st.integers(-2**62, 2**62),
                                             st.none()), min_size=rows, max_size=rows))
        elif kind == "bool":
            values = draw(st.lists(st.one_of(st.booleans(), st.none()), min_size=rows,
                                   max_size=rows))
        else:
            values = draw(st.lists(st.one_of(st.sampled_from(["no", "yes", "1", "", "é,\n"]),
                                             st.none()), min_size=rows, max_size=rows))
        arrays.append(pa.array(values, type={"float": pa.float64(), "int": pa.int64(),
                                             "bool": pa.bool_(), "str": pa.string()}[kind]))
    labels = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=rows, max_size=rows))
    arrays.append(pa.array(labels, pa.int64()))
    names.append("target")
    return pa.Table.from_arrays(arrays, names=names), draw(st.sampled_from(["csv", "parquet"]))


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _check(result, allowed=(0, 2)):
    assert result.exit_code in allowed, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if not line.startswith("epoch")]
        assert 1 <= len(errors) <= 2, result.stderr


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=tables())
def test_doctor_fit_predict_never_crash_nor_touch_other_files(tmp_path_factory, table):
    table, fmt = table
    folder = tmp_path_factory.mktemp("prop")
    data = folder / f"data.{fmt}"
    try:
        if fmt == "csv":
            pcsv.write_csv(table, data)
        else:
            pq.write_table(table, data)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return  # a table the writer itself refuses is not a user's file
    before = _files(folder)
    _check(runner.invoke(app, ["doctor", str(data), "--target", "target", "--json"]))
    fit = runner.invoke(app, ["fit", str(data), "--target", "target", "--out",
                              str(folder / "model"), "--epochs", "1", "--quiet"])
    _check(fit)
    event(f"fit exit {fit.exit_code}")
    if fit.exit_code == 0:
        preds = folder / "preds.csv"
        predict = runner.invoke(app, ["predict", str(folder / "model"), str(data), "--out",
                                      str(preds)])
        _check(predict)
        event(f"predict exit {predict.exit_code}")
        if predict.exit_code == 0:
            text = preds.read_text().splitlines()
            assert len(text) == table.num_rows + 1
            assert not any(math.isnan(float(v)) for line in text[1:]
                           for v in line.split(",")[1:])
    after = {k: v for k, v in _files(folder).items()
             if k.parts[0] not in ("model", "preds.csv")}
    assert after == before
    assert not [p for p in folder.rglob("*") if "tmp" in p.name or ".partial" in p.name]
