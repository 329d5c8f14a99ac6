import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import DataLoader, TensorDataset

from bagoftricks import OversamplingSampler
from distributed import harness

labels = hnp.arrays(np.int64, st.integers(2, 300), elements=st.integers(0, 5)).filter(
    lambda y: len(np.unique(y)) > 1)


@given(labels, st.integers(0, 2**31), st.integers(0, 100))
def test_epoch_holds_every_index_once_plus_draws_to_n_max(y, seed, epoch):
    s = OversamplingSampler(y, seed=seed)
    s.set_epoch(epoch)
    idx = np.array(list(s))
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    n_max = counts.max()
    assert len(idx) == len(s) == len(present) * n_max
    assert np.all(np.bincount(y[idx], minlength=len(counts))[present] == n_max)
    per_index = np.bincount(idx, minlength=len(y))
    assert np.all(per_index >= 1)  # every original index at least once
    majority = counts[y] == n_max
    assert np.all(per_index[majority] == 1)  # the largest class is never drawn again


@given(labels, st.integers(0, 1000))
def test_same_seed_and_epoch_same_order_other_epoch_differs(y, seed):
    a, b = OversamplingSampler(y, seed=seed), OversamplingSampler(y, seed=seed)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    if len(a) > 8:
        b.set_epoch(4)
        assert list(a) != list(b)


def test_order_depends_only_on_seed_and_epoch():
    # Another process, with other global seeds and thread counts, gets the same order.
    code = ("import sys, json, torch, numpy as np; torch.manual_seed(99); np.random.seed(5);"
            "torch.set_num_threads(1); from bagoftricks import OversamplingSampler as S;"
            "s = S([0, 0, 0, 0, 1, 2, 2], seed=7); s.set_epoch(2); print(json.dumps(list(s)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    torch.manual_seed(1)
    s = OversamplingSampler([0, 0, 0, 0, 1, 2, 2], seed=7)
    s.set_epoch(2)
    assert json.loads(out) == list(s) == s.epoch_indices(2).tolist()


@given(labels, st.integers(1, 5), st.booleans(), st.integers(0, 50))
def test_shards_are_disjoint_equal_and_cover_the_epoch(y, replicas, drop_last, epoch):
    shards = []
    for r in range(replicas):
        s = OversamplingSampler(y, seed=1, num_replicas=replicas, rank=r, drop_last=drop_last)
        s.set_epoch(epoch)
        shards.append(list(s))
    full = OversamplingSampler(y, seed=1)
    full.set_epoch(epoch)
    epoch_idx = list(full)
    assert len({len(sh) for sh in shards}) == 1  # equal length
    # positions: rank r takes positions r, r + R, ... of the (padded) epoch
    padded = (epoch_idx * (1 + replicas))[: len(shards[0]) * replicas]
    for r, sh in enumerate(shards):
        assert sh == padded[r::replicas]
    union = sorted(i for sh in shards for i in sh)
    if drop_last:
        assert len(union) == len(epoch_idx) - len(epoch_idx) % replicas
    else:
        assert len(union) >= len(epoch_idx)
        assert sorted(padded[:len(epoch_idx)]) == sorted(epoch_idx)


@given(labels, st.integers(0, 10), st.data())
def test_resume_mid_epoch_yields_exactly_the_rest(y, epoch, data):
    s = OversamplingSampler(y, seed=3)
    s.set_epoch(epoch)
    full = list(s)
    cut = data.draw(st.integers(0, len(full)))
    s.set_epoch(epoch)
    it = iter(s)
    head = [next(it) for _ in range(cut)]
    state = s.state_dict()
    resumed = OversamplingSampler(y, seed=3)
    resumed.load_state_dict(state)
    assert len(resumed) == len(full) - cut
    assert head + list(resumed) == full
    assert len(list(resumed)) == len(full)  # the next iteration is a whole epoch again


def test_dataloader_resume_with_consumed_count():
    y = np.array([0] * 20 + [1] * 3)
    ds = TensorDataset(torch.arange(len(y)))
    s = OversamplingSampler(y, seed=0)
    batches = [b[0].tolist() for b in DataLoader(ds, batch_size=4, sampler=s)]
    s2 = OversamplingSampler(y, seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=s2)
    it = iter(loader)
    done = [next(it)[0].tolist() for _ in range(3)]
    state = s2.state_dict(consumed=3 * 4)  # the loader fetched ahead of what was used
    s3 = OversamplingSampler(y, seed=0)
    s3.load_state_dict(state)
    rest = [b[0].tolist() for b in DataLoader(ds, batch_size=4, sampler=s3)]
    assert done + rest == batches


def test_string_negative_and_float_labels():
    y = np.array(["b", "a", "a", "a", "c"])
    s = OversamplingSampler(y)
    idx = list(s)
    assert sorted(np.unique(y[idx], return_counts=True)[1].tolist()) == [3, 3, 3]
    assert len(OversamplingSampler(np.array([-1, -1, 2]))) == 4
    assert len(OversamplingSampler(np.array([0.0, 1.0, 1.0]))) == 4
    assert len(OversamplingSampler(torch.tensor([5, 5, 5, 900]))) == 6  # gaps compacted


def test_many_classes_use_the_sorted_path():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 100, size=5000)
    s = OversamplingSampler(y)
    idx = s.epoch_indices()
    assert np.all(np.bincount(y[idx.numpy()]) == np.bincount(y).max())


def test_single_class_warns_and_yields_a_permutation():
    with pytest.warns(UserWarning, match="nothing to balance"):
        s = OversamplingSampler([2, 2, 2, 2])
    assert sorted(s) == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": []}, "labels: empty"),
    ({"labels": [[0, 1], [1, 0]]}, "labels: expected a 1-D"),
    ({"labels": [0.0, np.nan]}, "labels: contains NaN"),
    ({"labels": [0.5, 1.0]}, "labels: float labels must be whole"),
    ({"labels": [0, 1], "num_replicas": 2, "rank": 2}, "rank: "),
    ({"labels": [0, 1], "num_replicas": 0, "rank": 0}, "num_replicas: "),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OversamplingSampler(**kwargs)


def test_bad_state():
    s = OversamplingSampler([0, 1, 1], seed=1)
    with pytest.raises(ValueError, match="seed"):
        s.load_state_dict({"epoch": 0, "position": 0, "seed": 2})
    with pytest.raises(ValueError, match="position"):
        s.load_state_dict({"epoch": 0, "position": 99, "seed": 1})


def test_large_labels_are_vectorized():
    y = (np.random.default_rng(0).random(2_000_000) < 0.01).astype(np.int8)
    s = OversamplingSampler(y)
    idx = s.epoch_indices()
    assert idx.dtype == torch.int32 and len(idx) == 2 * int((y == 0).sum())


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_gloo_ranks_get_disjoint_shards_of_the_epoch():
    y = np.random.default_rng(0).choice(3, size=101, p=[0.8, 0.15, 0.05]).tolist()
    (w0, r0, s0), (w1, r1, s1) = harness.run("sampler_shard", 2, labels=y, epoch=5)
    assert (w0, r0, w1, r1) == (2, 0, 2, 1)
    full = OversamplingSampler(y, seed=11)
    full.set_epoch(5)
    epoch = list(full)
    assert len(s0) == len(s1) == -(-len(epoch) // 2)
    padded = (epoch + epoch)[:2 * len(s0)]
    assert s0 == padded[0::2] and s1 == padded[1::2]  # disjoint positions covering the epoch


def test_consumed_overrides_the_position_and_the_edges_of_a_position_load():
    y = np.array([0] * 6 + [1] * 2)
    s = OversamplingSampler(y, seed=1)
    assert s.state_dict(consumed=5)["position"] == 5  # nothing iterated: only `consumed`
    for position in (0, s.num_samples):  # the start and the end of an epoch are valid
        fresh = OversamplingSampler(y, seed=1)
        fresh.load_state_dict({**s.state_dict(), "position": position})
        assert len(list(fresh)) == s.num_samples - position
    with pytest.raises(ValueError, match=r"position -1 outside 0\.\.12"):
        s.load_state_dict({**s.state_dict(), "position": -1})
