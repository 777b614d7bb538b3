"""Golden values for KD and DKD, computed here with numpy from docs/methods/kd.md and docs/methods/dkd.md."""
import numpy as np
import pytest
import torch

from kdzoo.methods.dkd.distiller import dkd_loss
from kdzoo.methods.kd.distiller import kd_loss

Z_S = np.array([[1.0, -0.5, 2.0, 0.3], [0.2, 0.1, -1.0, 1.5], [3.0, 0.0, 0.5, -2.0]])
Z_T = np.array([[0.5, 0.0, 3.0, -1.0], [1.0, -0.3, 0.0, 2.5], [2.0, 1.0, -0.5, 0.0]])
LABELS = np.array([2, 3, 1])


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def kl_rows(p, q):
    return (p * (np.log(p) - np.log(q))).sum(-1)


def numpy_kd(zs, zt, t):
    return kl_rows(softmax(zt / t), softmax(zs / t)).mean() * t * t


def numpy_dkd(zs, zt, y, alpha, beta, t):
    ps, pt = softmax(zs / t), softmax(zt / t)
    total = 0.0
    for i, target in enumerate(y):
        b_s = np.array([ps[i, target], 1 - ps[i, target]])
        b_t = np.array([pt[i, target], 1 - pt[i, target]])
        others = [k for k in range(zs.shape[1]) if k != target]
        hat_s = softmax((zs[i, others] / t)[None])[0]
        hat_t = softmax((zt[i, others] / t)[None])[0]
        total += alpha * kl_rows(b_t, b_s) + beta * kl_rows(hat_t, hat_s)
    return total / len(y) * t * t


def tensors():
    return torch.tensor(Z_S), torch.tensor(Z_T), torch.tensor(LABELS)


@pytest.mark.parametrize('t', [1.0, 4.0])
def test_kd_golden(t):
    zs, zt, _ = tensors()
    assert kd_loss(zs, zt, t).item() == pytest.approx(numpy_kd(Z_S, Z_T, t), rel=1e-9)


def test_kd_hand_value():
    # two classes, T = 1: teacher (0.5, 0.5), student softmax(0, ln 3) = (0.25, 0.75)
    value = kd_loss(torch.tensor([[0.0, np.log(3.0)]]), torch.tensor([[0.0, 0.0]]), 1.0).item()
    assert value == pytest.approx(0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75))


@pytest.mark.parametrize('alpha,beta,t', [(1.0, 8.0, 4.0), (1.0, 2.0, 1.0), (0.5, 0.0, 2.0)])
def test_dkd_golden(alpha, beta, t):
    zs, zt, y = tensors()
    got = dkd_loss(zs, zt, y, alpha, beta, t).item()
    assert got == pytest.approx(numpy_dkd(Z_S, Z_T, LABELS, alpha, beta, t), rel=1e-6)


@pytest.mark.parametrize('i', range(3))
def test_dkd_with_coupled_weight_equals_kd(i):
    """KD = TCKD + (1 - p_t^T)·NCKD (docs/methods/conventions.md, 'Checks at the smallest scale', tier 0)."""
    zs, zt, y = (x[i:i + 1] for x in tensors())
    t = 2.0
    coupling = 1 - torch.softmax(zt / t, 1)[0, y[0]].item()
    assert dkd_loss(zs, zt, y, 1.0, coupling, t).item() == pytest.approx(kd_loss(zs, zt, t).item(), rel=1e-6)


def test_invalid_arguments_are_rejected():
    from kdzoo.registry import DISTILLERS
    with pytest.raises(ValueError, match='temperature must be > 0'):
        DISTILLERS.build(dict(type='kd', temperature=-1))
    with pytest.raises(ValueError, match='dkd: beta must be >= 0'):
        DISTILLERS.build(dict(type='dkd', beta=-2))
    with pytest.raises(KeyError, match="Did you mean 'kd'"):
        DISTILLERS.build(dict(type='kdd'))
