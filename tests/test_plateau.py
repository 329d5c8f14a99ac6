import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bagoftricks import FluctuationPlateau
from distributed import harness


def _opt(lrs=(0.1,)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs,
                                                                        strict=True)])


def cuts(seq, **kw):
    sched = FluctuationPlateau(_opt(), **kw)
    for x in seq:
        sched.step(x)
    return sched.cut_epochs


def test_alternating_example_of_the_chapter_cuts():
    seq = [1000 + (100 if t % 2 else -100) for t in range(40)]
    got = cuts(seq)
    assert got and got[0] == 16


def test_strictly_decreasing_noisy_sequence_never_cuts():
    rng = np.random.default_rng(0)
    seq = 5 - np.cumsum(rng.uniform(1e-4, 0.05, size=300))
    assert cuts(seq) == []


def test_steady_noisy_decline_never_cuts():
    rng = np.random.default_rng(1)
    seq = 100 - np.arange(200) * 1.0 + rng.normal(0, 1, 200)
    assert cuts(seq) == []


def test_plateau_after_decline_cuts_within_sixteen_epochs():
    # a decline of one noise sigma per epoch that stops dead at epoch 61 (1-based): the
    # hardest case for an EMA, whose lag must first run out
    t = np.arange(150)
    on_time = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        seq = np.where(t < 60, 2.2 - 0.02 * t, 1.0) + rng.normal(0, 0.02, 150)
        got = cuts(seq)
        assert got and got[0] > 61, got  # never during the decline
        on_time += got[0] <= 61 + 16
    assert on_time >= 8


def test_rising_loss_counts_as_no_progress():
    assert cuts(np.linspace(1, 2, 30)) == [16]


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=120),
       st.floats(1e-3, 1e3))
def test_scale_free_and_max_mode_mirror(seq, scale):
    base = cuts(seq)
    assert cuts([x * scale for x in seq]) == base
    assert cuts([-x for x in seq], mode="max") == base
    assert all(e >= 16 for e in base)  # never before the window is full


def test_lr_factor_min_lr_groups_and_growing_patience():
    opt = _opt((0.1, 0.01))
    sched = FluctuationPlateau(opt, factor=0.5, min_lr=[0.0, 0.004], patience_growth=2.0)
    for t in range(200):
        sched.step(1.0 + (0.1 if t % 2 else -0.1))
    lrs = sched.get_last_lr()
    assert lrs[1] == 0.004 and lrs == [g["lr"] for g in opt.param_groups]
    gaps = np.diff([0, *sched.cut_epochs])
    assert list(gaps[:3]) == [16, 32, 64]  # the wait doubles after each cut
    assert lrs[0] == pytest.approx(0.1 * 0.5 ** len(sched.cut_epochs))


def test_resume_cuts_at_the_same_epochs():
    rng = np.random.default_rng(3)
    seq = np.r_[np.linspace(2, 1, 40), 1 + rng.normal(0, 0.05, 120)]
    full = FluctuationPlateau(_opt())
    for x in seq:
        full.step(x)
    first = FluctuationPlateau(_opt())
    for x in seq[:57]:
        first.step(x)
    opt2 = _opt()
    opt2.param_groups[0]["lr"] = first.get_last_lr()[0]
    resumed = FluctuationPlateau(opt2)
    resumed.load_state_dict(first.state_dict())
    for x in seq[57:]:
        resumed.step(x)
    assert resumed.cut_epochs == full.cut_epochs and len(full.cut_epochs) >= 2
    assert resumed.get_last_lr() == full.get_last_lr()
    assert resumed.state_dict() == full.state_dict()  # a window of residuals, no more


def test_non_finite_metric():
    sched = FluctuationPlateau(_opt())
    with pytest.raises(ValueError, match="metric: nan at epoch 1 is not finite "
                                         r"\(use nan_policy='omit'"):
        sched.step(float("nan"))
    for policy in ("omit", "skip"):  # "skip" is an alias of "omit"
        sched = FluctuationPlateau(_opt(), nan_policy=policy)
        assert sched.nan_policy == "omit"
        assert sched.step(math.inf) is False and sched.last_epoch == 0


@pytest.mark.parametrize("min_lr, floor", [(0.05, 0.05), ([0.0], 0.0)])
def test_a_param_group_added_later_gets_the_scalar_floor_or_zero(min_lr, floor):
    opt = _opt((0.1,))
    sched = FluctuationPlateau(opt, min_lr=min_lr, patience_growth=1.0)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1})
    for t in range(400):
        sched.step(1.0 + (0.1 if t % 2 else -0.1))
    assert sched.get_last_lr()[1] == pytest.approx(max(floor, 0.1 * 0.5 ** sched.num_cuts))
    assert sched.num_cuts >= 1 and sched.get_last_lr()[1] < 0.1


def test_a_constant_metric_is_no_progress_even_at_threshold_zero():
    assert cuts([1.0] * 40, threshold=0.0) == [16, 40]  # ratio 0 <= 0: a plateau


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 15}, "window: "), ({"window": 0}, "window: "), ({"window": 16.0}, "window: "),
    ({"window": True}, "window: "), ({"factor": 1.0}, "factor: "), ({"factor": 0}, "factor: "),
    ({"beta": 1.0}, "beta: "), ({"beta": 0}, "beta: "), ({"threshold": -0.1}, "threshold: "),
    ({"threshold": 1.0}, "threshold: "), ({"threshold": 1.5}, "threshold: "),
    ({"patience_growth": 0.5}, "patience_growth: "), ({"spike_clip": 0.5}, "spike_clip: "),
    ({"cooldown": -1}, "cooldown: "), ({"cooldown": 1.5}, "cooldown: "),
    ({"mode": "up"}, "mode: "), ({"nan_policy": "ignore"}, "nan_policy: "),
    ({"min_lr": [0.0, 0.0]}, "min_lr: "),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FluctuationPlateau(_opt(), **kwargs)
    with pytest.raises(ValueError, match="optimizer: expected a torch.optim.Optimizer, got "
                                         "object"):
        FluctuationPlateau(object())


@pytest.mark.parametrize("kwargs", [{"window": 2}, {"threshold": 0.0}, {"patience_growth": 1.0},
                                    {"spike_clip": 1.0}, {"spike_clip": 1.5},
                                    {"spike_clip": None}])
def test_edge_values_that_are_allowed(kwargs):
    assert FluctuationPlateau(_opt(), **kwargs)._config().items() >= kwargs.items()


def test_documented_defaults_are_saved_with_the_state(capsys):
    sched = FluctuationPlateau(_opt())
    for t in range(40):
        sched.step(1.0 + (0.1 if t % 2 else -0.1))
    assert sched.cut_epochs and capsys.readouterr().out == ""  # quiet unless verbose
    assert sched.state_dict()["config"] == {
        "window": 16, "factor": 0.5, "beta": 0.5, "threshold": 0.3, "patience_growth": 1.5,
        "cooldown": 0, "mode": "min", "spike_clip": 2.5}


def test_step_returns_true_exactly_when_it_cuts_and_verbose_says_so(capsys):
    sched = FluctuationPlateau(_opt((1e-7,)), verbose=True)  # a small LR still gets cut
    returned = [sched.step(1.0 + (0.1 if t % 2 else -0.1)) for t in range(60)]
    assert [e for e, cut in enumerate(returned, start=1) if cut] == sched.cut_epochs
    assert sched.cut_epochs and sched.get_last_lr()[0] < 1e-7
    out = capsys.readouterr().out
    assert f"epoch {sched.cut_epochs[0]}: LR cut to" in out


@pytest.mark.parametrize("lr, min_lr", [(0.1, 0.1), (0.0, 0.0)])
def test_a_learning_rate_at_its_floor_is_not_counted_as_a_cut(lr, min_lr):
    sched = FluctuationPlateau(_opt((lr,)), min_lr=min_lr)
    returned = [sched.step(1.0 + (0.1 if t % 2 else -0.1)) for t in range(60)]
    assert not any(returned) and sched.num_cuts == 0 and sched.cut_epochs == []


def test_max_mode_reads_a_rising_metric_as_progress():
    rising = np.linspace(0.1, 0.9, 120)  # accuracy improving steadily: never a plateau
    assert cuts(rising, mode="max") == [] and cuts(rising) != []


def test_a_state_without_its_configuration_still_loads():
    first = FluctuationPlateau(_opt())
    for t in range(20):
        first.step(1.0 + (0.1 if t % 2 else -0.1))
    state = first.state_dict()
    del state["config"]  # saved before the configuration was stored with it
    second = FluctuationPlateau(_opt())
    second.load_state_dict(state)
    assert second.state_dict()["residuals"] == first.state_dict()["residuals"]


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_every_rank_cuts_at_the_same_epoch():
    rng = np.random.default_rng(4)
    # each rank sees its own noisy losses; the mean over ranks is what decides
    seqs = [(np.r_[np.linspace(2, 1, 30), np.ones(40)] + rng.normal(0, 0.05, 70)).tolist()
            for _ in range(2)]
    results = harness.run("plateau_decisions", 2, seqs=seqs)
    mean_seq = np.mean(seqs, axis=0)
    assert results[0] == results[1] == cuts(mean_seq) != []


def _reference_cuts(values, window=16, beta=0.5, threshold=0.3, growth=1.5, clip=2.5):
    """The rule as the README states it, written independently: residuals r = ema - x of
    the bias-corrected EMA, clipped inputs (Hampel) once half a window is seen, a cut when
    sum r <= threshold * sum |r| over a full window and the wait has passed."""
    cuts, residuals, ema_raw, seen, since, k = [], [], 0.0, 0, 0, 0
    for x in values:
        if clip is not None and len(residuals[-window:]) >= window // 2:
            prev = ema_raw / (1 - beta ** seen)
            typical = float(np.median(np.abs(residuals[-window:]))) / beta
            x = min(max(x, prev - clip * typical), prev + clip * typical)
        seen, since = seen + 1, since + 1
        ema_raw = beta * ema_raw + (1 - beta) * x
        residuals.append(ema_raw / (1 - beta ** seen) - x)
        last = residuals[-window:]
        if len(last) == window and since >= math.ceil(window * growth ** k):
            total = sum(abs(r) for r in last)
            if (sum(last) / total if total > 0 else 0.0) <= threshold:
                cuts.append(seen)
                k, since, residuals = k + 1, 0, []
    return cuts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("clip", [None, 2.5])
def test_cut_epochs_equal_an_independent_implementation(seed, clip):
    rng = np.random.default_rng(seed)
    t = np.arange(200)
    curve = 1 + 2 * np.exp(-t / (10 + 10 * seed)) + rng.normal(0, 0.02 + 0.01 * seed, 200)
    curve[rng.integers(0, 200, 3)] += 1.0  # a few spikes
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = FluctuationPlateau(opt, spike_clip=clip)
    for v in curve:
        sched.step(float(v))
    expected = _reference_cuts(curve.tolist(), clip=clip)
    assert expected and sched.cut_epochs == expected


def _scheduler(**kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return opt, FluctuationPlateau(opt, **kwargs)


def test_torch_scheduler_contracts():
    opt, sched = _scheduler(window=4)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.5})
    for _ in range(12):  # a flat metric: cuts, with the group added after construction
        sched.step(1.0, epoch=None)
    assert sched.cut_epochs and opt.param_groups[1]["lr"] < 0.5
    for group in opt.param_groups:  # an LR changed elsewhere is what get_last_lr says
        group["lr"] = 0.123
    assert sched.get_last_lr() == [0.123, 0.123]
    sched.step(1.0, 13)  # ReduceLROnPlateau's step(metrics, epoch) signature


def test_a_state_from_another_configuration_is_refused():
    _, sched = _scheduler(window=16)
    sched.step(1.0)
    _, other = _scheduler(window=4, factor=0.25)
    with pytest.raises(ValueError, match=r"saved by a FluctuationPlateau with other window "
                                         r"\(16, here 4\), factor \(0.5, here 0.25\)"):
        other.load_state_dict(sched.state_dict())
    _, same = _scheduler(window=16)
    same.load_state_dict(sched.state_dict())
    assert same.state_dict() == sched.state_dict()


def test_it_is_a_reduce_lr_on_plateau_for_frameworks():
    opt, sched = _scheduler(window=4)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    for _ in range(8):  # what Lightning and the Trainer do: step(metrics) once an epoch
        sched.step(torch.tensor(1.0))
    assert sched.cut_epochs == [4] and sched.get_last_lr() == [0.5]
    assert opt.param_groups[0]["lr"] == 0.5


def test_chained_and_sequential_schedulers_refuse_it_up_front():
    opt, sched = _scheduler()
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        torch.optim.lr_scheduler.ChainedScheduler([sched])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        torch.optim.lr_scheduler.SequentialLR(
            opt, [torch.optim.lr_scheduler.LinearLR(opt), sched], milestones=[2])


def test_spikes_are_clipped_once_half_a_window_of_residuals_is_seen():
    def ema_after_spike_at(epoch):
        sched = FluctuationPlateau(_opt())
        for _ in range(epoch - 1):
            sched.step(1.0)
        sched.step(100.0)
        return sched.state_dict()["ema"] / (1 - 0.5 ** epoch)
    assert ema_after_spike_at(9) == pytest.approx(1.0)  # 8 residuals: clipped to the EMA
    assert ema_after_spike_at(6) > 40  # 5 residuals: too few to judge, taken as it is
