import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.preprocessing import StandardScaler

from bagoftricks import RunningStandardizer, Standardize, standardize
from bagoftricks.standardize import feature_axis, standardize_per
from distributed import harness

data = hnp.arrays(np.float64, st.tuples(st.integers(2, 120), st.integers(1, 6)),
                  elements=st.floats(-1e6, 1e6, allow_nan=False))


def _split(x, cuts):
    edges = sorted({0, len(x), *[c % (len(x) + 1) for c in cuts]})
    return [x[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


@given(data, st.lists(st.integers(0, 1000), max_size=6))
def test_equals_numpy_float64(x, cuts):
    s = RunningStandardizer().fit(_split(x, cuts))
    np.testing.assert_allclose(s.mean.numpy(), x.mean(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.var.numpy(), x.var(0), rtol=1e-10, atol=1e-6)
    u = RunningStandardizer(unbiased=True).fit(_split(x, cuts))
    np.testing.assert_allclose(u.std.numpy(), x.std(0, ddof=1), rtol=1e-10, atol=1e-6)


@given(data, st.lists(st.integers(0, 1000), min_size=1, max_size=5), st.randoms())
def test_merge_in_any_order_gives_the_same_result(x, cuts, rnd):
    parts = _split(x, cuts)
    pieces = [RunningStandardizer().update(p) for p in parts]
    rnd.shuffle(pieces)
    merged = pieces[0]
    for p in pieces[1:]:
        merged.merge(p)
    whole = RunningStandardizer().update(x)
    np.testing.assert_allclose(merged.mean.numpy(), whole.mean.numpy(), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(merged.var.numpy(), whole.var.numpy(), rtol=1e-10, atol=1e-6)
    assert merged.n_seen.tolist() == [len(x)] * x.shape[1]


@pytest.fixture(params=["numba kernel", "torch ops"])
def summing_path(request, monkeypatch):
    """Both ways of summing a batch: the CPU kernel, and the torch ops a GPU uses, run here."""
    if request.param == "torch ops":
        def torch_sums(x, shift):
            rows = torch.from_numpy(x)
            sums = standardize.shifted_sums(rows, torch.from_numpy(shift), torch.empty_like(rows))
            return tuple(t.numpy() for t in sums)
        monkeypatch.setattr(standardize, "shifted_moments", torch_sums)
    return request.param


def test_float32_near_1e6_has_the_right_std(summing_path):
    rng = np.random.default_rng(0)
    x = (1e6 + rng.normal(size=(200_000, 4))).astype(np.float32)
    s = RunningStandardizer().fit(torch.from_numpy(x).split(65536))
    ref = x.astype(np.float64)
    np.testing.assert_allclose(s.std.numpy(), ref.std(0), rtol=1e-9)
    np.testing.assert_allclose(s.mean.numpy(), ref.mean(0), rtol=1e-12)


@pytest.mark.parametrize("offset", [30.0, 1e3, 1e5])
def test_a_tiny_first_batch_far_from_the_rest_takes_the_exact_path(summing_path, offset):
    # the running mean (the shift) sits far from the later batches, so their shifted sums
    # cancel: those batches must fall back to exact float64 moments (error 1e-6 without)
    rng = np.random.default_rng(3)
    batches = [rng.normal(0, 1, size=(1, 3))] + [rng.normal(offset, 1, size=(500, 3))
                                                 for _ in range(20)]
    batches = [b.astype(np.float32) for b in batches]
    ref = np.concatenate(batches).astype(np.float64)
    s = RunningStandardizer().fit([torch.from_numpy(b) for b in batches])
    np.testing.assert_allclose(s.var.numpy(), ref.var(0), rtol=1e-8)
    np.testing.assert_allclose(s.mean.numpy(), ref.mean(0), rtol=1e-12)


def test_equals_sklearn_standard_scaler_and_transforms_like_it():
    rng = np.random.default_rng(1)
    x = rng.normal([0, 5, -3e3], [1, 1e-3, 40], size=(1000, 3))
    sk = StandardScaler().fit(x)
    s = RunningStandardizer().fit(np.array_split(x, 7))
    np.testing.assert_allclose(s.mean.numpy(), sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(s.scale.numpy(), sk.scale_, rtol=1e-10)
    xt = torch.as_tensor(x[:10], dtype=torch.float32)
    out = s.transform(xt)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), sk.transform(xt.double().numpy()), rtol=1e-6,
                               atol=1e-6)
    back = s.inverse_transform(out.double())
    np.testing.assert_allclose(back.numpy(), x[:10], rtol=1e-6)


def test_zero_variance_features_get_scale_one():
    x = np.c_[np.full(10, 3.0), np.arange(10.0)]
    s = RunningStandardizer().update(x)
    assert s.std[0] == 0 and s.scale[0] == 1
    assert torch.equal(s.transform(torch.as_tensor(x))[:, 0], torch.zeros(10, dtype=torch.float64))


@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 60), st.integers(1, 6)),
                  elements=st.floats(-1e3, 1e3, allow_nan=False)),
       st.sampled_from([0.0, 0.1, 0.25, 1.0]))
def test_the_scale_floor_is_a_fraction_of_the_median_varying_std(x, floor):
    s = RunningStandardizer(scale_floor=floor).update(x)
    std = s.std.numpy()  # (= NumPy's, test above; exactly 0 where NumPy rounds to 1e-158)
    varying = std[std > 0]
    low = floor * np.median(varying) if len(varying) else 0.0
    expected = np.where(std > 0, np.maximum(std, low), 1.0)
    np.testing.assert_allclose(s.scale.numpy(), expected, rtol=1e-9, atol=1e-12)
    t = RunningStandardizer()
    t.load_state_dict(s.state_dict())  # the floor travels with the statistics
    torch.testing.assert_close(t.scale, s.scale)


def test_a_floor_keeps_rare_strokes_of_blank_pixels_from_dominating():
    from sklearn.datasets import load_digits

    x = torch.as_tensor(load_digits().data)
    plain = RunningStandardizer().update(x)
    floored = RunningStandardizer(scale_floor=0.25).update(x)
    assert plain.transform(x).abs().max() > 40  # a pixel blank in 99.9% of the images
    assert floored.transform(x).abs().max() < 16
    assert torch.equal(floored.scale[plain.std > 1.5], plain.std[plain.std > 1.5])


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 3), st.integers(1, 5)),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)),
       st.lists(st.integers(0, 1000), max_size=4), st.booleans())
def test_no_feature_axis_is_one_mean_and_std_over_every_value(x, cuts, flat):
    x = x.reshape(len(x), -1) if flat else x  # a signal given flat, or N x C x L
    s = RunningStandardizer(dim=None).fit(_split(x, cuts))
    np.testing.assert_allclose(s.mean.numpy(), [x.mean()], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s.var.numpy(), [x.var()], rtol=1e-10, atol=1e-6)
    mean, scale = float(s.mean[0]), float(s.scale[0])  # (both checked against NumPy above)
    np.testing.assert_allclose(s.transform(x).numpy(), (x - mean) / scale, rtol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(s.transform(x)).numpy(), x,
                               rtol=1e-9, atol=1e-6)
    x32 = torch.as_tensor(x).float()  # the float32 layer, to float32's rounding of x
    if scale > 1e-30:  # (below float32's normals the layer's scale is its smallest normal)
        torch.testing.assert_close(Standardize(s)(x32), s.transform(x32), rtol=1e-5,
                                   atol=1e-6 * float(x32.abs().max() / scale + 1))
    t = RunningStandardizer()
    t.load_state_dict(s.state_dict())  # the missing axis survives a save
    assert t.dim is None and torch.equal(t.transform(x), s.transform(x))


def test_the_feature_axis_follows_the_inputs_shape_and_what_they_are():
    assert feature_axis(4) == feature_axis(3, "channel") == 1  # N x C x ...: channels
    assert feature_axis(2) == -1                               # a table's columns
    assert feature_axis(2, "channel") is None                  # a flat signal: one channel
    assert [standardize_per(v) for v in (True, False, "feature", "channel")] == [
        "feature", None, "feature", "channel"]


def test_one_std_for_all_pixels_keeps_blank_ones_small():
    from sklearn.datasets import load_digits

    x = torch.as_tensor(load_digits().data)
    s = RunningStandardizer(dim=None).update(x)
    assert s.transform(x).abs().max() < 3  # (per pixel: above 40; floored: 16)


def test_channels_of_images():
    x = torch.randn(8, 3, 5, 5, dtype=torch.float64) * torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1)
    s = RunningStandardizer(dim=1).fit(x.split(3))
    ref = x.permute(1, 0, 2, 3).reshape(3, -1)
    torch.testing.assert_close(s.mean, ref.mean(1))
    torch.testing.assert_close(s.var, ref.var(1, correction=0))
    out = s.transform(x)
    torch.testing.assert_close(out.permute(1, 0, 2, 3).reshape(3, -1).std(1, correction=0),
                               torch.ones(3, dtype=torch.float64))


def test_nan_policy():
    x = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0], [5.0, 6.0]])
    with pytest.raises(ValueError, match="batch: contains NaN"):
        RunningStandardizer().update(x)
    s = RunningStandardizer(nan_policy="omit").fit([x[:2], x[2:]])
    np.testing.assert_allclose(s.mean.numpy(), np.nanmean(x, 0))
    np.testing.assert_allclose(s.var.numpy(), np.nanvar(x, 0))
    assert s.n_seen.tolist() == [3, 3]
    with pytest.raises(ValueError, match="^batch: contains infinite values$"):
        RunningStandardizer(nan_policy="omit").update(np.array([[1.0], [np.inf]]))


def test_state_dict_and_module():
    x = torch.randn(100, 4) * 10 + 3
    s = RunningStandardizer().update(x)
    t = RunningStandardizer()
    t.load_state_dict(s.state_dict())
    torch.testing.assert_close(t.transform(x), s.transform(x))
    t.update(x)  # keeps accumulating after a load
    torch.testing.assert_close(t.mean, s.mean)
    assert t.n_seen[0] == 200
    module = Standardize(s)
    assert set(dict(module.named_buffers())) == {"mean", "scale"}
    torch.testing.assert_close(module(x), s.transform(x))
    model = torch.nn.Sequential(module, torch.nn.Linear(4, 1))
    assert "0.mean" in model.state_dict()
    empty = Standardize(num_features=4)  # built for loading a saved model into
    torch.testing.assert_close(empty(x), x)
    empty.load_state_dict(module.state_dict())
    torch.testing.assert_close(empty(x), s.transform(x))
    with pytest.raises(ValueError, match="standardizer: "):
        Standardize()


@pytest.mark.parametrize("call, match", [
    (lambda: RunningStandardizer(nan_policy="drop"), "nan_policy: "),
    (lambda: RunningStandardizer(scale_floor=-0.1), "scale_floor: expected a number >= 0"),
    (lambda: RunningStandardizer(scale_floor=float("nan")), "scale_floor: "),
    (lambda: RunningStandardizer().update(np.ones(3)),
     r"^batch: expected shape .*; use x.reshape\(-1, 1\) for a single feature$"),
    (lambda: RunningStandardizer(dim=3).update(np.ones((3, 2))), "dim: 3 is out of range"),
    (lambda: RunningStandardizer(dim="1"), "dim: expected an axis .* or None, got '1'"),
    (lambda: RunningStandardizer(dim=True), "dim: expected an axis"),
    (lambda: RunningStandardizer().update(np.ones((3, 2))).update(np.ones((3, 4))),
     "batch: has 4 features"),
    (lambda: RunningStandardizer().fit([]), "batches: empty"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
    with pytest.raises(RuntimeError, match="no batch seen"):
        _ = RunningStandardizer().mean


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_gloo_ranks_sync_to_the_single_process_statistics():
    x = (1e3 + np.random.default_rng(3).normal(size=(301, 5)) * [1, 2, 3, 4, 5]).tolist()
    results = harness.run("standardizer_sync", 2, x=x)
    s = RunningStandardizer().update(np.array(x))
    for mean, var in results:
        np.testing.assert_allclose(mean, s.mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(var, s.var.numpy(), rtol=1e-12)
    assert results[0] == results[1]


@pytest.mark.parametrize("one_first", [True, False])
def test_merging_a_single_value_with_an_empty_side_keeps_it(one_first):
    from bagoftricks.moments import chan_merge
    one = (np.array([1.0]), np.array([4.0]), np.array([0.0]))
    empty = (np.array([0.0]), np.array([0.0]), np.array([0.0]))
    n, mean, m2 = chan_merge(one, empty) if one_first else chan_merge(empty, one)
    assert (n[0], mean[0], m2[0]) == (1.0, 4.0, 0.0)


def test_half_precision_batches_take_the_torch_path_and_match_float64():
    x = torch.as_tensor(np.random.default_rng(0).normal(3, 2, (500, 4)), dtype=torch.float16)
    s = RunningStandardizer().fit(x.split(128))
    ref = x.double()
    torch.testing.assert_close(s.mean, ref.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(s.std, ref.std(0, correction=0), rtol=1e-12, atol=0)


def test_fit_on_x_y_pairs_reads_x():
    x, y = torch.randn(300, 3, dtype=torch.float64), torch.full((300, 3), 1e3)
    s = RunningStandardizer().fit(zip(x.split(100), y.split(100), strict=True))
    torch.testing.assert_close(s.mean, x.mean(0), rtol=0, atol=1e-12)


def test_standardize_without_statistics_is_one_error():
    with pytest.raises(ValueError, match="^standardizer: give a fitted RunningStandardizer or "
                                         "num_features$"):
        Standardize()


@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 60), st.integers(1, 6)),
                  elements=st.floats(-1e3, 1e3, allow_nan=False).filter(
                      lambda v: v == 0 or abs(v) > 1e-100)))  # squares stay normal floats
def test_without_the_mean_it_scales_only_as_scikit_learn_does(x):
    s = RunningStandardizer(with_mean=False).fit(np.array_split(x, 3))
    ref = StandardScaler(with_mean=False).fit(x)
    ours = s.transform(torch.as_tensor(x)).numpy()
    std, size = s.std.numpy(), np.abs(x).max(0)
    # scikit-learn calls a feature whose variance is within rounding of 0 constant
    # (scale 1); ours keeps the tiny std: compare the features both see as varying
    well = (std == 0) | (std > 1e-6 * size)
    np.testing.assert_allclose(ours[:, well], ref.transform(x)[:, well], rtol=1e-9,
                               atol=1e-9 * max(1.0, np.abs(x).max()))
    np.testing.assert_allclose(s.inverse_transform(torch.as_tensor(ours)).numpy(), x,
                               rtol=1e-9, atol=1e-9 * max(1.0, np.abs(x).max()))
    torch.testing.assert_close(s.mean, torch.as_tensor(x).mean(0))  # still measured
    t = RunningStandardizer()
    t.load_state_dict(s.state_dict())  # with_mean travels with the statistics
    torch.testing.assert_close(t.transform(torch.as_tensor(x)), s.transform(torch.as_tensor(x)))
    layer = Standardize(s)  # the saved model's layer does the same, in float32
    out = layer(torch.as_tensor(x, dtype=torch.float32))
    assert torch.isfinite(out).all()  # never NaN, even where float32 underflows
    held = ((std == 0) | (std > 1e-3 * size)) & np.all((x == 0) | (np.abs(x) > 1e-30), 0)
    # (features float32 holds, and whose spread its rounding of x leaves intact)
    torch.testing.assert_close(out[:, held], torch.as_tensor(ours[:, held]).float(),
                               rtol=1e-4, atol=1e-3)


def test_older_states_without_with_mean_still_center():
    x = np.arange(12.0).reshape(6, 2)
    state = RunningStandardizer().update(x).state_dict()
    del state["with_mean"]
    t = RunningStandardizer(with_mean=False)
    t.load_state_dict(state)
    assert t.with_mean and abs(float(t.transform(torch.as_tensor(x)).mean())) < 1e-12


def test_with_mean_must_be_a_bool():
    with pytest.raises(ValueError, match="with_mean: expected True or False, got 'no'"):
        RunningStandardizer(with_mean="no")


def test_standardized_columns_match_scikit_learn_on_the_training_rows():
    from bagoftricks.standardize import standardized_columns
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4)) * [1.0, 3, 2, 1.5] + [0, 1e3, -4, 2]
    rows = rng.choice(300, 200, replace=False)
    expected = StandardScaler().fit(X[rows]).transform(X)  # (no std under the floor: 1/4
    np.testing.assert_allclose(standardized_columns(X, rows), expected, atol=1e-4)  # of 1.75)
    X[:, 0] *= 0.01  # under the floor: scaled by a quarter of the median std instead
    floored = standardized_columns(X, rows)[:, 0]
    median = np.median(X[rows].std(0))
    np.testing.assert_allclose(floored, (X[:, 0] - X[rows, 0].mean()) / (0.25 * median),
                               atol=1e-4)
