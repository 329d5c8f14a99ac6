"""RAdam without its blind steps, against torch's RAdam."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from bagoftricks.optim import RAdam, rho


def test_rho_crosses_5_after_the_fifth_step():
    assert [t for t in range(1, 10) if rho(t, 0.999) <= 5] == [1, 2, 3, 4, 5]


def _raw_features_run(make, steps=8):
    X, y = load_breast_cancer(return_X_y=True)  # features from 1e-3 to 4e3, unscaled
    X, y = torch.as_tensor(X[:128], dtype=torch.float32), torch.as_tensor(y[:128])
    torch.manual_seed(0)
    model = torch.nn.Linear(30, 2)
    opt = make(model.parameters())
    moves = []
    for _ in range(steps):
        before = model.weight.detach().clone()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        moves.append((model.weight.detach() - before).abs().max().item())
    return np.array(moves), opt


def test_torch_radam_jumps_in_its_first_steps_and_this_one_does_not():
    torch_moves, _ = _raw_features_run(lambda p: torch.optim.RAdam(p, lr=1e-2))
    ours, opt = _raw_features_run(lambda p: RAdam(p, lr=1e-2))
    assert torch_moves[:5].max() > 100 * 1e-2  # lr x a raw gradient: 300x the LR here
    assert torch_moves[5:].max() < 1e-2  # its rectified steps are of the LR's size
    assert ours[:5].max() == 0  # no update while rho_t <= 5 ...
    assert 0 < ours[5:].max() < 1e-2  # ... then the rectified steps
    assert int(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 8  # moments counted
    same, _ = _raw_features_run(lambda p: RAdam(p, lr=1e-2, degenerated_to_sgd=True))
    np.testing.assert_array_equal(same, torch_moves)


def test_state_dicts_are_interchangeable_and_closures_work():
    w = torch.nn.Parameter(torch.randn(3, 2))

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss
    opt = RAdam([w], lr=0.1)
    for _ in range(7):
        loss = opt.step(closure)
    assert loss is not None
    other = torch.optim.RAdam([torch.nn.Parameter(w.detach().clone())], lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert int(other.state_dict()["state"][0]["step"]) == 7
    with pytest.raises(TypeError):
        RAdam([w], 0.1, (0.9, 0.999), 1e-8, 0, False)  # the option is keyword-only


def test_every_hyper_parameter_reaches_torchs_radam():
    kwargs = {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1,
              "decoupled_weight_decay": True}
    ours = RAdam([torch.nn.Parameter(torch.zeros(2))], **kwargs).param_groups[0]
    ref = torch.optim.RAdam([torch.nn.Parameter(torch.zeros(2))], **kwargs).param_groups[0]
    assert {k: v for k, v in ours.items() if k != "params"} == {
        k: v for k, v in ref.items() if k != "params"}


def test_the_defaults_are_torchs():
    ours = RAdam([torch.nn.Parameter(torch.zeros(2))])
    ref = torch.optim.RAdam([torch.nn.Parameter(torch.zeros(2))])
    assert ours.defaults == ref.defaults and ours.degenerated_to_sgd is False
