"""Temperature scaling (Guo et al., 2017): one scalar ``T`` that divides a classifier's
logits so that its probabilities on held-out data have the least log loss.

A network trained on past the epoch of least validation loss keeps gaining accuracy
while its probabilities grow overconfident (the mnist1d MLP: validation loss 1.04 at
epoch 8, 3.9 at epoch 150, accuracy 59% then 66%). Dividing the logits by ``T`` leaves
the ranking of the classes alone and removes the overconfidence; the log loss after
that, the *calibrated* validation loss, is what ``fit`` keeps the best epoch by.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BOUNDS = (1e-2, 1e2)  # the temperatures fit_temperature may return


def calibrated_nll(logits, y, temperature: float, shift=None) -> float:
    """Mean ``-log softmax(logits / T + shift)[y]``, in float64."""
    z, y, c = _checked(logits, y, shift)
    return _loss_and_softmax(1 / temperature, z, y, c)[0]


def fit_temperature(logits, y, shift=None, classes=None) -> float:
    """The ``T`` in ``BOUNDS`` minimizing the log loss of ``softmax(logits / T + shift)``
    (``shift``: a prior correction added after the division, as the predictor adds it)
    against soft targets rather than hard labels: each of the ``n`` rows puts
    ``(n + 1) / (n + 2)`` on its label and the rest evenly on the other ``classes`` (a
    boolean mask over the columns, default all: a class training never saw gets none;
    Laplace's rule of succession, as in Platt's (1999) targets, over the whole set: ``T``
    is one parameter). Hard labels send ``T`` to its lower bound (logits times 100) whenever the
    model separates the validation rows, as it does on a small table, and the held-out
    log loss with it (wine: 0.78 against 0.13); with thousands of rows the targets are the
    labels to 1e-3. (Platt's per-class counts over-soften an accurate model whose
    classes have a dozen validation rows each: digits 0.106 -> 0.208.)

    The loss is convex in ``a = 1 / T``: Newton's method on ``a``, each step halved until
    the loss does not rise; one softmax per point tried. NumPy float64 throughout
    (tensors are read once)."""
    z, y, c = _checked(logits, y, shift)
    n, k = z.shape
    t = _soft_targets(n, k, y, classes)
    rows, among = np.arange(n), t[2]
    zt = t[0] * z[rows, y] + t[1] * (z[:, among].sum(1) - z[rows, y])  # target-weighted
    lo, hi = 1 / BOUNDS[1], 1 / BOUNDS[0]
    a = 1.0
    f, p = _loss_and_softmax(a, z, y, c, t)
    for _ in range(100):
        mean_z = (p * z).sum(1)
        grad = (mean_z - zt).mean()
        curv = ((p * z * z).sum(1) - mean_z**2).mean()
        step = grad / curv if curv > 0 else grad
        while True:
            b = min(max(a - step, lo), hi)
            fb, pb = _loss_and_softmax(b, z, y, c, t)
            if fb <= f or abs(b - a) <= 1e-12 * a:
                break
            step /= 2
        done = abs(b - a) <= 1e-10 * a
        if fb <= f:
            a, f, p = b, fb, pb
        if done:
            break
    return float(1 / a)


def fit_class_bias(logits, y, shift=None, classes=None) -> np.ndarray:
    """The per-class bias ``b`` minimizing the log loss of ``softmax(logits + shift + b)``
    against ``fit_temperature``'s soft targets: the bias half of bias-corrected
    temperature scaling (Alexandari et al., 2020), ``logits`` already divided by ``T``.
    At the optimum each class's mean predicted probability over the rows equals its
    share of the targets, so a model that under-predicts its rare classes on held-out
    data is moved back to their rates (mnist1d-zipf: the worst class off by 39% -> 14%,
    ``examples/prior_evidence.py``). It has one parameter a class, so it needs enough
    validation rows of each: with a handful (digits-zipf, 3-35 rows a class) it adds
    more noise than it removes.

    Convex: Newton's method over the ``classes`` (a class training never saw keeps 0 and
    is left out of the fit), damped (Levenberg-Marquardt) where the curvature is too
    flat for a full step, as on a row the model is sure of; the bias is
    centred (softmax over those classes ignores a constant). Float64 NumPy array of
    ``K`` values."""
    z, y, c = _checked(logits, y, shift)
    n, k = z.shape
    own, other, among = _soft_targets(n, k, y, classes)
    s = z[:, among] + c[among]  # the fit is over the classes training saw
    y = np.cumsum(among)[y] - 1
    t = (own, other, np.ones(s.shape[1], bool))
    share = other + np.bincount(y, minlength=s.shape[1]) / n * (own - other)  # mean target
    b, damping = np.zeros(s.shape[1]), 0.0
    f, p = _loss_and_softmax(1.0, s, y, b, t)
    for _ in range(200):
        grad = p.mean(0) - share
        if np.abs(grad).max() <= 1e-13:
            break
        hess = np.diag(p.mean(0)) - p.T @ p / n
        step = np.linalg.solve(hess + (damping + 1e-12) * np.eye(len(b)), grad)
        ft, pt = _loss_and_softmax(1.0, s, y, b - step, t)
        if ft <= f:  # Levenberg-Marquardt: toward Newton after a success, else toward
            b, f, p, damping = b - step, ft, pt, damping / 10  # a gradient step
        elif damping > 1e12:
            break
        else:
            damping = max(10 * damping, 1e-6)
    out = np.zeros(k)
    out[among] = b - b.mean()
    return out


def _soft_targets(n: int, k: int, y: np.ndarray, classes) -> tuple:
    """Laplace's targets for ``n`` rows over the ``classes`` mask (default all): (on a
    row's class, on each other one, the mask), or one clear error."""
    among = np.ones(k, bool) if classes is None else np.asarray(classes, bool)
    if among.shape != (k,) or not among[y].all():
        raise ValueError(f"classes: expected {k} flags including every label of y")
    m = int(among.sum())
    own = (n + 1) / (n + 2) if m > 1 else 1.0
    return own, (1 - own) / max(m - 1, 1), among


def _loss_and_softmax(a: float, z: np.ndarray, y: np.ndarray, c: np.ndarray,
                      t: tuple | None = None) -> tuple:
    """(mean cross-entropy of ``softmax(a z + c)`` against the labels ``y``, or against
    targets putting ``t[0]`` on a row's class and ``t[1]`` on each other one of the
    classes ``t[2]``; that softmax), from one exponential."""
    s = a * z + c
    s -= s.max(1, keepdims=True)
    e = np.exp(s)
    total = e.sum(1)
    on_label = s[np.arange(len(y)), y]
    target = on_label if t is None else t[0] * on_label + t[1] * (s[:, t[2]].sum(1) - on_label)
    return float((np.log(total) - target).mean()), e / total[:, None]


def _checked(logits, y, shift) -> tuple:
    """(logits, labels, shift) as float64/int64 NumPy arrays, or one clear error."""
    z = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits,
                   dtype=np.float64)
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits: expected shape (n, classes), got {z.shape}")
    if len(z) == 0 or not np.isfinite(z).all():
        raise ValueError("logits: expected at least one row, all finite")
    if y.shape != (len(z),) or not np.issubdtype(y.dtype, np.integer) or (
            y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"y: expected {len(z)} class indices in [0, {z.shape[1]}), got "
                         f"shape {y.shape} of {y.dtype}")
    c = np.zeros(z.shape[1]) if shift is None else np.asarray(
        shift.detach().cpu() if isinstance(shift, torch.Tensor) else shift, dtype=np.float64)
    if c.shape != (z.shape[1],):
        raise ValueError(f"shift: expected {z.shape[1]} values, got shape {c.shape}")
    return z, y.astype(np.int64), c


class Temperature(nn.Module):
    """Divides logits by a fitted temperature and adds the per-class ``bias`` if one was
    fitted: the layer of a predictor between the model and its prior shift."""

    def __init__(self, temperature: float, bias=None) -> None:
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("bias", None if bias is None else torch.as_tensor(
            bias, dtype=torch.float32))  # (a None buffer is left out of the state dict)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        out = logits / self.temperature.to(logits.dtype)
        return out if self.bias is None else out + self.bias.to(out)
