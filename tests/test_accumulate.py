import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bagoftricks import LossAccumulator
from bagoftricks.accumulate import FOLD_EVERY
from distributed import harness

batches = st.lists(st.tuples(st.floats(-1e3, 1e3, allow_nan=False, width=32),
                             st.integers(1, 512)), min_size=1, max_size=40)


@given(batches)
def test_weighted_mean_matches_numpy_float64(pairs):
    acc = LossAccumulator()
    for loss, n in pairs:
        acc.update(torch.tensor(loss, dtype=torch.float32), n)
    losses, sizes = np.array([p[0] for p in pairs], np.float32), np.array([p[1] for p in pairs])
    expected = np.average(losses.astype(np.float64), weights=sizes)
    assert acc.compute() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=100))
def test_per_sample_losses_average_like_their_mean(values):
    acc = LossAccumulator()
    acc.update(torch.tensor(values, dtype=torch.float64))
    assert acc.compute() == pytest.approx(math.fsum(values) / len(values), abs=1e-12)


def test_tensor_batch_size_and_default_of_one():
    acc = LossAccumulator()
    acc.update(torch.tensor(2.0), torch.tensor(3))
    acc.update(torch.tensor(6.0))
    assert acc.compute() == pytest.approx((2 * 3 + 6) / 4)


def test_update_never_synchronizes(monkeypatch):
    calls = []

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, **kwargs):
            calls.append(name)
            return original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, wrapped)

    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "numpy", "cpu",
                 "__index__"):
        spy(name)
    acc = LossAccumulator()
    losses = [torch.tensor(0.5, requires_grad=True) * 2 for _ in range(5)]
    for i, loss in enumerate(losses):
        acc.update(loss, n=8 + i)
    acc.update(torch.tensor([1.0, float("nan")]))
    acc.update(torch.tensor(1.0), torch.tensor(4))
    for i in range(FOLD_EVERY + 3):  # past a fold of the pending losses, NaN included
        acc.update(torch.tensor(float("nan") if i == 700 else 1.0), n=torch.tensor(2.0))
    assert calls == []
    acc_skip = LossAccumulator(nan_policy="skip")
    acc_skip.update(torch.tensor(1.0), 2)
    acc_skip.compute()
    assert calls, "the spy must see the one sync that compute() does"


def test_folding_keeps_the_mean_and_the_first_bad_step_exact():
    rng = np.random.default_rng(0)
    values, sizes = rng.normal(size=3000), rng.integers(1, 64, 3000)
    acc = LossAccumulator()
    for v, n in zip(values, sizes, strict=True):
        acc.update(torch.tensor(v, dtype=torch.float32), n=int(n))
    v32 = values.astype(np.float32).astype(np.float64)
    assert acc.compute() == pytest.approx((v32 * sizes).sum() / sizes.sum(), rel=1e-14)
    acc.reset()
    for i in range(2500):
        acc.update(torch.tensor(float("inf") if i in (1500, 2100) else 1.0), n=3)
    with pytest.raises(FloatingPointError, match=r"2 non-finite .* \(first at step 1500 "):
        acc.compute()


def test_nan_raises_naming_the_step():
    acc = LossAccumulator()
    acc.update(torch.tensor(1.0), 4)
    acc.update(torch.tensor(2.0), 4)
    acc.update(torch.tensor(float("nan")), 4)
    acc.update(torch.tensor(float("inf")), 4)
    with pytest.raises(FloatingPointError, match=r"2 non-finite.*step 2"):
        acc.compute()


def test_skip_counts_and_reports():
    acc = LossAccumulator(nan_policy="skip")
    acc.update(torch.tensor(1.0), 1)
    acc.update(torch.tensor(float("nan")), 10)
    acc.update(torch.tensor(3.0), 3)
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        assert acc.compute() == pytest.approx((1 + 9) / 4)
    assert acc.n_skipped == 1


def test_all_skipped_or_empty_is_an_error_not_nan():
    acc = LossAccumulator(nan_policy="skip")
    with pytest.raises(ValueError, match="no finite loss"):
        acc.compute()
    acc.update(torch.tensor(float("nan")))
    with pytest.raises(ValueError, match="no finite loss"):
        acc.compute()


@pytest.mark.parametrize("n, match", [(0, "positive"), (-3, "positive"), (2.5, "int"),
                                      (True, "int"), (torch.ones(2), "scalar")])
def test_bad_batch_size(n, match):
    with pytest.raises(ValueError, match=f"n: .*{match}"):
        LossAccumulator().update(torch.tensor(1.0), n)


def test_bad_policy_and_n_with_per_sample():
    with pytest.raises(ValueError, match="nan_policy"):
        LossAccumulator(nan_policy="ignore")
    with pytest.raises(ValueError, match="n: "):
        LossAccumulator().update(torch.ones(3), 3)


def test_state_dict_resume_and_reset():
    full, first = LossAccumulator(), LossAccumulator()
    data = [(0.3, 5), (float("nan"), 2), (0.9, 7), (0.1, 1)]
    for loss, n in data[:2]:
        first.update(torch.tensor(loss), n)
        full.update(torch.tensor(loss), n)
    state = first.state_dict()
    buf = __import__("io").BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    resumed = LossAccumulator()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for loss, n in data[2:]:
        resumed.update(torch.tensor(loss), n)
        full.update(torch.tensor(loss), n)
    with pytest.raises(FloatingPointError, match="step 1"):
        resumed.compute()
    resumed.nan_policy = full.nan_policy = "skip"
    with pytest.warns(RuntimeWarning):
        assert resumed.compute() == full.compute()
    resumed.reset()
    resumed.update(torch.tensor(4.0))
    assert resumed.compute() == 4.0


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_gloo_processes_reduce_to_the_union_mean():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 5, size=13).astype(np.float32).tolist()
    sizes = rng.integers(1, 64, size=13).tolist()
    results = harness.run("loss_accumulator", 2, losses=losses, sizes=sizes)
    single = LossAccumulator()
    for loss, n in zip(losses, sizes, strict=True):
        single.update(torch.tensor(loss, dtype=torch.float32), n)
    assert results[0] == results[1] == pytest.approx(single.compute(), rel=1e-14)


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_a_non_finite_loss_on_one_rank_is_reported_on_every_rank():
    results = harness.run("loss_accumulator_nan", 2)
    assert "(on another rank)" in results[0] and "(first at step 1 of this rank)" in results[1]


def test_omit_is_the_policy_name_and_skip_its_alias():
    for name in ("omit", "skip"):
        acc = LossAccumulator(nan_policy=name)
        assert acc.nan_policy == "omit"
        acc.update(torch.tensor(float("nan")), 2)
        acc.update(torch.tensor(3.0), 2)
        with pytest.warns(RuntimeWarning, match="skipped 1"):
            assert acc.compute() == 3.0
    with pytest.raises(ValueError, match="nan_policy: expected one of"):
        LossAccumulator(nan_policy="ignore")


def test_per_sample_losses_sum_in_float64_and_name_their_first_bad_step():
    acc = LossAccumulator(nan_policy="omit")
    acc.update(torch.tensor([1e8, 1.0, -1e8]))  # float32 values, a float64 sum: mean 1/3
    assert acc.compute() == pytest.approx(1 / 3, rel=1e-12)
    acc = LossAccumulator(nan_policy="omit")
    acc.update(torch.tensor([2.0, 4.0]))
    acc.update(torch.tensor([float("nan"), 6.0]))  # the NaN is left out, not counted as 0/1
    with pytest.warns(RuntimeWarning, match="skipped 1 non-finite"):
        assert acc.compute() == pytest.approx(4.0)
    state = acc.state_dict()
    strict = LossAccumulator()
    for step in range(3):
        strict.update(torch.tensor([1.0, float("nan") if step == 2 else 1.0]))
    with pytest.raises(FloatingPointError, match="first at step 2 of this rank"):
        strict.compute()
    resumed = LossAccumulator(nan_policy="omit")
    resumed.n_skipped = 5
    resumed.load_state_dict(state)
    assert resumed.n_skipped == 0


def test_a_reduced_state_on_one_process_is_the_local_state():
    acc = LossAccumulator(nan_policy="omit")
    for loss, n in ((1.5, 3), (0.5, 5), (float("nan"), 2)):  # first bad step 2, 1 bad
        acc.update(torch.tensor(loss), n)
    local, reduced = acc.state_dict(), acc.state_dict(reduce=True)
    torch.testing.assert_close(reduced["state"], local["state"], rtol=0, atol=0)
    assert torch.count_nonzero(local["state"][:3]) == 3  # loss, count and skips all kept
    empty = LossAccumulator().state_dict(reduce=True)["state"]
    assert empty.shape == local["state"].shape


def test_the_skipped_losses_warning_points_at_the_callers_line():
    import os

    acc = LossAccumulator(nan_policy="omit")
    acc.update(torch.tensor(1.0), 1)
    acc.update(torch.tensor(float("nan")), 1)
    with pytest.warns(RuntimeWarning, match="skipped 1 non-finite") as record:
        acc.compute()
    if "MUTANT_UNDER_TEST" not in os.environ:  # (mutmut adds a frame of its own)
        assert {w.filename for w in record} == {__file__}
