"""DIST (docs/methods/dist.md) and RKD (docs/methods/rkd.md): golden values from numpy loops, invariances, gradients, and
gradient routing through a DistillModel."""
import numpy as np
import pytest
import torch

from kdzoo.methods import DIST, RKD
from kdzoo.methods.dist.distiller import dist_losses, inter_class_relation, intra_class_relation
from kdzoo.methods.rkd.distiller import rkd_losses
from kdzoo.registry import DISTILLERS
from kdzoo.taps import Feature, FeatureSpec
from tiny_models import TINY_CNN, TINY_VIT, check_gradient_routing

RNG = np.random.default_rng(0)
Z_S = RNG.normal(0, 2, (5, 4))                 # logits, 5 samples × 4 classes
Z_T = RNG.normal(0, 2, (5, 4))
E_S = RNG.normal(0, 1, (6, 3))                 # embeddings: 6 samples, student width 3, teacher width 5
E_T = RNG.normal(0, 1, (6, 5))


# ----------------------------------------------------------------------------------------------- numpy
def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def pearson(u, v, eps=1e-8):
    u, v = u - u.mean(), v - v.mean()
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + eps))


def numpy_dist(zs, zt, beta, gamma, t):
    ps, pt = softmax(zs / t), softmax(zt / t)
    inter = np.mean([1 - pearson(ps[b], pt[b]) for b in range(len(ps))])
    intra = np.mean([1 - pearson(ps[:, k], pt[:, k]) for k in range(ps.shape[1])])
    return beta * t * t * inter, gamma * t * t * intra


def smooth_l1(a, b):
    diff = np.abs(a - b)
    return float(np.mean(np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)))


def numpy_distance_potential(e):
    n = len(e)
    d = np.array([[np.linalg.norm(e[i] - e[j]) if i != j else 0.0 for j in range(n)] for i in range(n)])
    return d / d[d > 0].mean()


def numpy_angle_potential(e):
    n = len(e)
    angles = np.zeros((n, n, n))
    for i in range(n):
        for j in range(n):
            for k in range(n):
                u, v = e[j] - e[i], e[k] - e[i]
                if np.linalg.norm(u) > 0 and np.linalg.norm(v) > 0:
                    angles[i, j, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return angles


def numpy_rkd(es, et, distance_weight=25.0, angle_weight=50.0):
    return (distance_weight * smooth_l1(numpy_distance_potential(es), numpy_distance_potential(et)),
            angle_weight * smooth_l1(numpy_angle_potential(es), numpy_angle_potential(et)))


def t64(array):
    return torch.tensor(array, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------- DIST
@pytest.mark.parametrize('beta,gamma,t', [(1.0, 1.0, 1.0), (1.0, 1.0, 4.0), (2.0, 0.5, 2.0)])
def test_dist_golden(beta, gamma, t):
    inter, intra = dist_losses(t64(Z_S), t64(Z_T), beta, gamma, t)
    expected_inter, expected_intra = numpy_dist(Z_S, Z_T, beta, gamma, t)
    assert inter.item() == pytest.approx(expected_inter, rel=1e-10)
    assert intra.item() == pytest.approx(expected_intra, rel=1e-10)


def test_dist_hand_value_two_classes():
    # With two classes every centred probability vector is ±(a, −a): Pearson is ±1. Student and teacher
    # prefer opposite classes in each sample and each class column, so both relations are 1 − (−1) = 2.
    inter, intra = dist_losses(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert inter.item() == pytest.approx(2.0, abs=1e-6) and intra.item() == pytest.approx(2.0, abs=1e-6)


def test_dist_distiller_returns_both_terms():
    distiller = DISTILLERS.build(dict(type='DIST', temperature=4.0))
    spec = FeatureSpec('logits', 'vector', (4,))
    losses = distiller.compute_losses({'logits': Feature(t64(Z_S), spec)}, {'logits': Feature(t64(Z_T), spec)},
                                      None)
    expected = numpy_dist(Z_S, Z_T, 1.0, 1.0, 4.0)
    assert list(losses) == ['loss_dist_inter', 'loss_dist_intra']
    assert [v.item() for v in losses.values()] == pytest.approx(expected, rel=1e-10)


def test_dist_is_invariant_to_per_sample_logit_shifts():
    shifted_s = t64(Z_S + RNG.normal(0, 5, (5, 1)))
    shifted_t = t64(Z_T + RNG.normal(0, 5, (5, 1)))
    for got, expected in zip(dist_losses(shifted_s, shifted_t, temperature=2.0),
                             dist_losses(t64(Z_S), t64(Z_T), temperature=2.0)):
        assert got.item() == pytest.approx(expected.item(), rel=1e-10)


def test_dist_relations_are_invariant_to_positive_affine_maps():
    ps, pt = torch.softmax(t64(Z_S), 1), torch.softmax(t64(Z_T), 1)
    row_scale, row_shift = t64(RNG.uniform(0.2, 3.0, (5, 1))), t64(RNG.normal(0, 1, (5, 1)))
    col_scale, col_shift = t64(RNG.uniform(0.2, 3.0, (1, 4))), t64(RNG.normal(0, 1, (1, 4)))
    # eps = 1e-8 sits next to the product of norms, so the invariance is exact only up to ~1e-7
    assert inter_class_relation(row_scale * ps + row_shift, pt).item() == \
        pytest.approx(inter_class_relation(ps, pt).item(), abs=1e-6)
    assert intra_class_relation(col_scale * ps + col_shift, pt).item() == \
        pytest.approx(intra_class_relation(ps, pt).item(), abs=1e-6)
    # a negative scale flips the correlation: 1 − ρ becomes 1 + ρ
    assert inter_class_relation(-ps, pt).item() == pytest.approx(2 - inter_class_relation(ps, pt).item(),
                                                                 abs=1e-6)


def test_dist_is_zero_when_student_equals_teacher():
    inter, intra = dist_losses(t64(Z_T), t64(Z_T))
    assert inter.item() == pytest.approx(0, abs=1e-6) and intra.item() == pytest.approx(0, abs=1e-6)


def test_dist_gradcheck():
    zs = t64(Z_S[:3]).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: sum(dist_losses(z, t64(Z_T[:3]), temperature=2.0)), (zs,))


def test_dist_rejects_bad_arguments_and_class_mismatch():
    with pytest.raises(ValueError, match='temperature must be > 0'):
        DIST(temperature=0)
    with pytest.raises(ValueError, match='dist: gamma must be >= 0'):
        DIST(gamma=-1)
    with pytest.raises(ValueError, match="DIST: the student has 10 classes and teacher 't' 100"):
        DIST(teacher='t').check_matching_taps({'student': {'logits': FeatureSpec('logits', 'vector', (10,))},
                                               't': {'logits': FeatureSpec('logits', 'vector', (100,))}})


# ----------------------------------------------------------------------------------------------- RKD
def test_rkd_golden_with_different_widths():
    losses = rkd_losses(t64(E_S), t64(E_T))
    expected_distance, expected_angle = numpy_rkd(E_S, E_T)
    assert list(losses) == ['loss_rkd_distance', 'loss_rkd_angle']
    assert losses['loss_rkd_distance'].item() == pytest.approx(expected_distance, rel=1e-9)
    assert losses['loss_rkd_angle'].item() == pytest.approx(expected_angle, rel=1e-9)


def test_rkd_golden_exercises_the_linear_part_of_smooth_l1():
    # stretching one teacher sample far away makes some distance potentials differ by more than 1
    far_teacher = E_T.copy()
    far_teacher[0] *= 40
    assert np.abs(numpy_distance_potential(E_S) - numpy_distance_potential(far_teacher)).max() > 1
    losses = rkd_losses(t64(E_S), t64(far_teacher), distance_weight=1.0, angle_weight=1.0)
    expected = numpy_rkd(E_S, far_teacher, 1.0, 1.0)
    assert [losses['loss_rkd_distance'].item(), losses['loss_rkd_angle'].item()] == pytest.approx(expected,
                                                                                                 rel=1e-9)


def test_rkd_is_zero_for_a_scaled_copy():
    losses = rkd_losses(t64(E_S), 7.0 * t64(E_S))
    assert losses['loss_rkd_distance'].item() == pytest.approx(0, abs=1e-12)
    assert losses['loss_rkd_angle'].item() == pytest.approx(0, abs=1e-12)


def test_rkd_is_zero_for_a_scaled_rotated_shifted_embedding_of_another_width():
    # rows of q are orthonormal, so e ↦ 3·e·q + shift keeps every angle and scales every distance by 3
    q = np.linalg.qr(RNG.normal(size=(5, 5)))[0][:3]
    teacher = 3.0 * E_S @ q + RNG.normal(size=(1, 5))
    losses = rkd_losses(t64(E_S), t64(teacher))
    assert losses['loss_rkd_distance'].item() == pytest.approx(0, abs=1e-12)
    assert losses['loss_rkd_angle'].item() == pytest.approx(0, abs=1e-12)


def test_rkd_teacher_side_gets_no_gradient_and_student_side_passes_gradcheck():
    student, teacher = t64(E_S).requires_grad_(), t64(E_T).requires_grad_()
    sum(rkd_losses(student, teacher).values()).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda e: sum(rkd_losses(e, t64(E_T)).values()),
                                    (t64(E_S).requires_grad_(),))


def test_rkd_weight_zero_skips_the_term_and_one_sample_gives_zero():
    assert list(rkd_losses(t64(E_S), t64(E_T), angle_weight=0)) == ['loss_rkd_distance']
    single = t64(E_S[:1]).requires_grad_()
    losses = rkd_losses(single, t64(E_T[:1]))
    assert all(v.item() == 0 and v.requires_grad for v in losses.values())


def test_rkd_pools_configured_map_and_token_taps():
    distiller = RKD(student_tap='stage4', teacher_tap='stage3', loss_weight=2.0)
    distiller.bind(['vit'])
    assert distiller.required_taps() == {'student': ['stage4'], 'vit': ['stage3']}
    student_map = torch.randn(6, 8, 2, 2, dtype=torch.float64)
    teacher_tokens = torch.randn(6, 1 + 4, 5, dtype=torch.float64)    # CLS + a 2×2 grid
    student = {'stage4': Feature(student_map, FeatureSpec('stage4', 'map', (8, 2, 2), grid=(2, 2)))}
    teacher = {'stage3': Feature(teacher_tokens, FeatureSpec('stage3', 'tokens', (5, 5), 1, (2, 2)))}
    losses = distiller(student, {'vit': teacher}, None)
    expected = numpy_rkd(student_map.mean((2, 3)).numpy(), teacher_tokens[:, 1:].mean(1).numpy())
    assert [v.item() for v in losses.values()] == pytest.approx([2 * x for x in expected], rel=1e-9)


def test_rkd_rejects_attention_taps_and_negative_weights():
    with pytest.raises(ValueError, match='attention maps.*attn:blocks.0.attn: attn'):
        RKD(teacher_tap='attn:blocks.0.attn').build(
            {'pre_logits': FeatureSpec('pre_logits', 'vector', (16,))},
            {'attn:blocks.0.attn': FeatureSpec('attn:blocks.0.attn', 'attn', (2, 17, 17))})
    with pytest.raises(ValueError, match='rkd: angle_weight must be >= 0'):
        DISTILLERS.build(dict(type='rkd', angle_weight=-1))


# ----------------------------------------------------------------------------------------------- routing
@pytest.mark.parametrize('distiller,expected_losses,unused', [
    (dict(type='kd', temperature=4.0), {'loss_kd'}, ()),
    (dict(type='dkd'), {'loss_dkd'}, ()),
    (dict(type='dist'), {'loss_dist_inter', 'loss_dist_intra'}, ()),
    (dict(type='rkd'), {'loss_rkd_distance', 'loss_rkd_angle'}, ('model.fc.',)),   # pre_logits feed the fc
])
def test_gradients_reach_student_only_and_teacher_is_unchanged(distiller, expected_losses, unused):
    # no task loss: every student gradient comes through the distiller
    check_gradient_routing(dict(TINY_CNN, zero_init_last=False), TINY_VIT, distiller, expected_losses,
                           unused_student_params=unused, input_size=(1, 16, 16), batch_size=6, connectors=False)
