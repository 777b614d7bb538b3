"""Verification metrics against hand-worked answers (insightface protocol, docs/face_reference.md §2)."""
import math
import warnings

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from kdzoo.face.evaluation.verification import (ACCURACY_THRESHOLDS, FaceVerificationMetric,
                                                UndefinedMetricWarning, contiguous_folds, format_rate,
                                                fuse_flip, kfold_accuracy, l2_normalize, roc_auc, roc_curve,
                                                threshold_for_far, tpr_at_fpr, val_at_far, xnorm)
from kdzoo.registry import METRICS

# Six pairs, similarity scores already sorted high to low: G G I G I I  (G genuine, I impostor).
SIX_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
SIX_LABELS = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
# The same pairs as squared distances, kept off the 0.01 grid: 0.205 0.405 0.605 0.805 1.005 1.205.
SIX_DISTANCES = np.array([0.205, 0.405, 0.605, 0.805, 1.005, 1.205])


# ---------------------------------------------------------------------------------------------- embeddings
def test_fuse_flip_is_the_sum():
    assert np.array_equal(fuse_flip([[3, 4], [0, 1]], [[6, 8], [0, 0]]), [[9, 12], [0, 1]])
    with pytest.raises(ValueError):
        fuse_flip(np.zeros((2, 3)), np.zeros((2, 4)))


def test_xnorm_is_mean_raw_norm_over_originals_and_flips():
    emb, flip = np.array([[3., 4.], [0., 1.]]), np.array([[6., 8.], [0., 0.]])
    assert xnorm(emb) == pytest.approx((5 + 1) / 2)
    assert xnorm(emb, flip) == pytest.approx((5 + 1 + 10 + 0) / 4)


def test_l2_normalize_keeps_zero_rows():
    assert np.allclose(l2_normalize([[3, 4], [0, 0]]), [[0.6, 0.8], [0, 0]])


# ------------------------------------------------------------------------------------------------ k-fold
def test_folds_are_contiguous_like_sklearn_kfold():
    folds = contiguous_folds(23, 10)
    # 23 = 3 folds of 3 then 7 folds of 2, in order, no shuffle
    assert [test.tolist() for _, test in folds[:4]] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    assert folds[-1][1].tolist() == [21, 22]
    assert all(np.array_equal(np.sort(np.r_[train, test]), np.arange(23)) for train, test in folds)
    train, test = contiguous_folds(5, 1)[0]  # insightface's LFold(1): train = test = everything
    assert train.tolist() == test.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        contiguous_folds(5, 10)


def test_default_threshold_grid_is_insightface():
    assert ACCURACY_THRESHOLDS.size == 400 and ACCURACY_THRESHOLDS[0] == 0
    assert ACCURACY_THRESHOLDS[-1] == pytest.approx(3.99)


def test_best_threshold_accuracy_on_six_pairs():
    # One fold = choose and score on all six.  Accepting d < t:
    #   t in (0.405, 0.605]: accept G G           -> wrong only on the G at 0.805        -> 5/6
    #   t in (0.805, 1.005]: accept G G I G       -> wrong only on the I at 0.605        -> 5/6
    # every other t is worse; np.argmax keeps the first best grid point: 0.41.
    result = kfold_accuracy(SIX_DISTANCES, SIX_LABELS, n_folds=1)
    assert result.mean == pytest.approx(5 / 6)
    assert result.std == 0
    assert result.fold_thresholds[0] == pytest.approx(0.41)


def twenty_pairs_with_two_hard_ones():
    """10 folds of (genuine, impostor); genuine at 0.505, impostor at 1.505, except
    fold 0's genuine at 2.505 (hard genuine) and fold 1's impostor at 0.305 (hard impostor)."""
    issame = np.tile([True, False], 10)
    distances = np.where(issame, 0.505, 1.505)
    distances[0], distances[3] = 2.505, 0.305
    return distances, issame


def test_ten_fold_accuracy_by_hand():
    # Whatever fold is held out, the 18 training pairs are most accurate for t in (0.505, 1.505]
    # (e.g. held out fold 0: 9 G at .505 accepted, 8 I at 1.505 rejected, I at .305 wrongly accepted: 17/18),
    # so every fold uses t = 0.51.  Held-out accuracy:
    #   fold 0: G 2.505 rejected (wrong), I 1.505 rejected -> 1/2
    #   fold 1: G 0.505 accepted, I 0.305 accepted (wrong) -> 1/2
    #   folds 2-9: both right                                -> 1
    # mean = (0.5 + 0.5 + 8) / 10 = 0.9; population std = sqrt((2 * 0.4**2 + 8 * 0.1**2) / 10) = 0.2
    distances, issame = twenty_pairs_with_two_hard_ones()
    result = kfold_accuracy(distances, issame)
    assert result.fold_accuracies.tolist() == [0.5, 0.5] + [1.0] * 8
    assert np.allclose(result.fold_thresholds, 0.51)
    assert result.mean == pytest.approx(0.9)
    assert result.std == pytest.approx(0.2)


def insightface_kfold_accuracy_loop(dist, issame, n_folds=10):
    """A literal transcription of insightface's calculate_roc/calculate_accuracy loops."""
    thresholds = np.arange(0, 4, 0.01)
    accuracy = []
    for train, test in contiguous_folds(len(dist), n_folds):
        acc_train = [np.mean(np.less(dist[train], t) == issame[train]) for t in thresholds]
        best = thresholds[np.argmax(acc_train)]
        accuracy.append(np.mean(np.less(dist[test], best) == issame[test]))
    return np.mean(accuracy), np.std(accuracy)


def test_kfold_accuracy_matches_the_literal_insightface_loop():
    rng = np.random.default_rng(0)
    issame = rng.random(600) < 0.5
    dist = np.clip(np.where(issame, rng.normal(0.9, 0.3, 600), rng.normal(1.6, 0.3, 600)), 0, 4)
    result = kfold_accuracy(dist, issame)
    assert (result.mean, result.std) == pytest.approx(insightface_kfold_accuracy_loop(dist, issame))


def test_tied_distances_pick_the_first_best_threshold():
    # Every pair at 0.5: rejecting all (t <= 0.5) and accepting all (t > 0.5) are both 1/2 right;
    # np.argmax keeps t = 0.0.
    result = kfold_accuracy([0.5] * 4, [True, False, True, False], n_folds=1)
    assert result.mean == 0.5 and result.fold_thresholds[0] == 0.0


def test_all_genuine_accuracy_is_perfect_at_the_first_accepting_threshold():
    result = kfold_accuracy([0.5] * 20, [True] * 20)
    assert result.mean == 1.0 and np.allclose(result.fold_thresholds, 0.51)


# -------------------------------------------------------------------------------------------------- VAL
# genuine at 0.1 0.3 0.5 0.7, impostor at 0.2 0.6 0.8 0.9; a coarse grid 0, .25, .5, .75, 1:
# FAR(t) = 0, 1/4, 1/4, 2/4, 4/4
VAL_DISTANCES = np.array([0.1, 0.3, 0.5, 0.7, 0.2, 0.6, 0.8, 0.9])
VAL_ISSAME = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
COARSE_GRID = np.array([0, 0.25, 0.5, 0.75, 1.0])


def test_threshold_for_far_interpolates_between_grid_points():
    fars = [0, 0.25, 0.25, 0.5, 1.0]
    # 0.375 lies between FAR .25 (last reached at t=.5) and FAR .5 (t=.75): halfway -> 0.625
    assert threshold_for_far(fars, COARSE_GRID, 0.375) == pytest.approx(0.625)
    # an exact hit takes the largest threshold with that FAR (scipy<=1.8 interp1d on the repeated FARs)
    assert threshold_for_far(fars, COARSE_GRID, 0.25) == pytest.approx(0.5)
    # out of reach: insightface's threshold 0.0
    assert threshold_for_far([0, 0.25, 0.25], COARSE_GRID[:3], 0.3) == 0.0


def test_val_at_far_by_hand():
    # target 0.375 -> t = 0.625: genuine below 0.625: .1 .3 .5 -> VAL 3/4; impostor .2 .6 -> FAR 2/4
    result = val_at_far(VAL_DISTANCES, VAL_ISSAME, 0.375, n_folds=1, thresholds=COARSE_GRID)
    assert (result.val, result.val_std, result.far) == pytest.approx((0.75, 0, 0.5))
    # target 0.25 -> t = 0.5 (strict <): genuine .1 .3 -> 2/4; impostor .2 -> 1/4
    result = val_at_far(VAL_DISTANCES, VAL_ISSAME, 0.25, n_folds=1, thresholds=COARSE_GRID)
    assert (result.val, result.far) == pytest.approx((0.5, 0.25))


def test_val_at_far_ten_folds_by_hand():
    # Twenty pairs of test_ten_fold_accuracy_by_hand, target 1e-3, default 0.001 grid.  Training FAR is 0
    # up to the lowest training impostor and jumps just above it, so the interpolated threshold sits a hair
    # (1e-3 of the jump's share of a 0.001 step) above the last grid point with FAR 0:
    #   fold 1 held out: training impostors all at 1.505 -> t ~ 1.505; test G .505 accepted, test I
    #                   .305 accepted: VAL 1, FAR 1
    #   other folds: the impostor at .305 trains -> t ~ 0.305: test G .505 (or 2.505) and test I
    #                   rejected: VAL 0, FAR 0
    distances, issame = twenty_pairs_with_two_hard_ones()
    result = val_at_far(distances, issame, 1e-3)
    assert result.val == pytest.approx(0.1)
    assert result.val_std == pytest.approx(0.3)  # sqrt((0.9**2 + 9 * 0.1**2) / 10)
    assert result.far == pytest.approx(0.1)


def test_val_at_far_on_too_few_impostors_warns_but_keeps_insightface_value():
    distances, issame = twenty_pairs_with_two_hard_ones()
    with pytest.warns(UndefinedMetricWarning, match=r'VAL@FAR=1e-3: a training fold holds only \d+ impostor '
                                                    r'pairs, fewer than the 1000'):
        result = val_at_far(distances, issame, 1e-3)
    assert result.val == pytest.approx(0.1)


def test_val_at_far_with_enough_impostors_does_not_warn():
    rng = np.random.default_rng(0)
    issame = np.arange(4000) % 2 == 0
    distances = np.where(issame, rng.uniform(0, 1, 4000), rng.uniform(1, 4, 4000))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        val_at_far(distances, issame, 1e-2)


def test_val_at_far_without_impostors_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning):
        result = val_at_far([0.5] * 20, [True] * 20)
    assert math.isnan(result.val)


# -------------------------------------------------------------------------------------------------- ROC
def test_roc_curve_six_pairs():
    # points after each distinct score: (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1), from (0,0) at +inf
    fpr, tpr, thresholds = roc_curve(SIX_SCORES, SIX_LABELS)
    assert np.allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert np.allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert thresholds[0] == np.inf and np.allclose(thresholds[1:], SIX_SCORES)


def test_roc_auc_six_pairs():
    # genuine-over-impostor orderings: G.9 beats 3, G.8 beats 3, G.6 beats 2 (.5 .4) -> 8 of 9
    assert roc_auc(SIX_SCORES, SIX_LABELS) == pytest.approx(8 / 9)


def test_tpr_at_fpr_six_pairs():
    # 3 impostors: FPR 1/3 allows one false accept -> best TPR is the point (1/3, 1)
    assert tpr_at_fpr(SIX_SCORES, SIX_LABELS, 1 / 3) == pytest.approx(1.0)
    assert tpr_at_fpr(SIX_SCORES, SIX_LABELS, 0.5) == pytest.approx(1.0)


def test_tpr_at_fpr_rules_differ():
    # G I G I G I: points (0,1/3) (1/3,1/3) (1/3,2/3) (2/3,2/3) (2/3,1) (1,1)
    scores, labels = SIX_SCORES, np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    # FPR 0.6: at most one false accept -> 2/3; closest ROC FPR is 2/3 -> highest TPR there: 1
    assert tpr_at_fpr(scores, labels, 0.6) == pytest.approx(2 / 3)
    assert tpr_at_fpr(scores, labels, 0.6, rule='closest') == pytest.approx(1.0)


def test_fpr_finer_than_one_impostor_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match='impostor pairs'):
        assert math.isnan(tpr_at_fpr(SIX_SCORES, SIX_LABELS, 0.2))  # needs >= 5 impostors, has 3


def test_ties_count_half_in_auc_and_form_one_roc_point():
    fpr, tpr, _ = roc_curve([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])
    assert np.allclose(fpr, [0, 1]) and np.allclose(tpr, [0, 1])
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    # G .9, tie G/I at .5, I .1: 3 of 4 orderings won, the tie counts 1/2 -> 3.5 / 4
    assert roc_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)


def test_all_genuine_roc_is_undefined():
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(roc_auc([0.9, 0.8], [1, 1]))
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(tpr_at_fpr([0.9, 0.8], [1, 1], 0.1))


def test_format_rate():
    assert [format_rate(x) for x in (1e-3, 1e-2, 2.5e-4, 1e-6)] == ['1e-3', '1e-2', '2.5e-4', '1e-6']


# ------------------------------------------------------------------------------------------------ metric
COS_IMPOSTOR = 0.29775  # squared distance 2 - 2 * cos = 1.4045, between the 0.001 grid points


def twenty_pair_images():
    """40 images of norm 2 for 20 pairs, genuine and impostor alternating.

    Genuine pair: a = (2,0) with flip (0,2), b = (0,2) with flip (2,0): apart without flips (d = 2),
    the same direction (1,1) after flip fusion (d = 0).  Impostor pair: a = (2,0), b at cos 0.29775 to it,
    flips equal to the images: d = 1.4045 either way.
    """
    impostor = 2 * np.array([COS_IMPOSTOR, math.sqrt(1 - COS_IMPOSTOR ** 2)])
    emb, flip, issame = [], [], []
    for k in range(20):
        genuine = k % 2 == 0
        emb += [[2, 0], [0, 2] if genuine else impostor]
        flip += [[0, 2], [2, 0]] if genuine else [[2, 0], impostor]
        issame.append(genuine)
    return np.array(emb, dtype=np.float32), np.array(flip, dtype=np.float32), issame


def data_samples(emb, flip=None, order=None, as_data_element=False):
    samples = []
    for i in (range(len(emb)) if order is None else order):
        fields = dict(pred_embedding=torch.from_numpy(emb[i]))
        if flip is not None:
            fields['pred_embedding_flip'] = torch.from_numpy(flip[i])
        samples.append(BaseDataElement(metainfo=dict(sample_idx=int(i)), **fields) if as_data_element
                       else dict(sample_idx=int(i), **fields))
    return samples


def lfw_metric(issame, **meta):
    """The metric of the twenty-pair tests: TPR at FPR 0.2 (10 impostors resolve it), prefix lfw/."""
    metric = FaceVerificationMetric(fprs=(0.2,), prefix='lfw')
    metric.dataset_meta = dict(issame=issame, **meta)
    return metric


def run_metric(metric, samples, batch_size=7):
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.evaluate(len(samples))


def test_metric_bin_convention_with_flips():
    # With flips every genuine pair is at d = 0 and every impostor at 1.4045: each fold picks t = 0.01 and
    # is right on both pairs -> acc 1 +- 0.  VAL@1e-3: training FAR is 0 up to t = 1.404 and 1 from
    # 1.405, so t ~ 1.404001 accepts the genuine (d = 0) only -> VAL 1.  TPR@FPR=0.2 (10 impostors,
    # 2 false accepts allowed) = 1, AUC 1, XNorm 2 (all 80 raw vectors have norm 2).
    emb, flip, issame = twenty_pair_images()
    metric = METRICS.build(dict(type='FaceVerificationMetric', fprs=(0.2,), prefix='lfw'))
    metric.dataset_meta = dict(issame=issame)
    result = run_metric(metric, data_samples(emb, flip, order=np.random.default_rng(1).permutation(40)))
    assert set(result) == {'lfw/acc', 'lfw/acc_std', 'lfw/xnorm', 'lfw/val@far=1e-3', 'lfw/tpr@fpr=2e-1',
                           'lfw/auc'}
    assert result['lfw/acc'] == pytest.approx(1.0) and result['lfw/acc_std'] == pytest.approx(0.0)
    assert result['lfw/xnorm'] == pytest.approx(2.0)
    assert result['lfw/val@far=1e-3'] == pytest.approx(1.0)
    assert result['lfw/tpr@fpr=2e-1'] == pytest.approx(1.0)
    assert result['lfw/auc'] == pytest.approx(1.0)


def test_metric_without_flips_sees_genuine_pairs_apart():
    # No flips: genuine at d = 2 > impostor at 1.4045.  Training accuracy is 1/2 for t <= 1.4045,
    # 0 up to 2, 1/2 above: first best t = 0.0 rejects both test pairs -> acc 0.5 +- 0.  Every impostor
    # outscores every genuine: AUC 0, and with at most 2 false accepts no genuine is reached: TPR 0.
    emb, _, issame = twenty_pair_images()
    result = run_metric(lfw_metric(issame), data_samples(emb))
    assert result['lfw/acc'] == pytest.approx(0.5) and result['lfw/acc_std'] == pytest.approx(0.0)
    assert result['lfw/auc'] == pytest.approx(0.0)
    assert result['lfw/tpr@fpr=2e-1'] == pytest.approx(0.0)
    assert result['lfw/xnorm'] == pytest.approx(2.0)


def test_metric_explicit_pairs_and_data_elements_give_the_same_numbers():
    emb, flip, issame = twenty_pair_images()
    expected = run_metric(lfw_metric(issame), data_samples(emb, flip))

    # Store the 40 images in a shuffled order and index the pairs into it.
    stored = np.random.default_rng(2).permutation(40)  # stored[j] = original image at row j
    row_of = np.argsort(stored)
    pairs = np.stack([row_of[0::2], row_of[1::2]], axis=1)
    got = run_metric(lfw_metric(issame, pairs=pairs), data_samples(emb[stored], flip[stored], as_data_element=True))
    assert got == pytest.approx(expected)


def test_metric_default_fpr_on_too_few_impostors_is_nan_with_warning():
    emb, flip, issame = twenty_pair_images()
    metric = FaceVerificationMetric(prefix='cfp_fp')
    metric.dataset_meta = dict(issame=issame)
    with pytest.warns(UndefinedMetricWarning):
        result = run_metric(metric, data_samples(emb, flip))
    assert math.isnan(result['cfp_fp/tpr@fpr=1e-2'])  # 10 impostors cannot resolve FPR 1e-2


def test_metric_rejects_inconsistent_inputs():
    emb, flip, issame = twenty_pair_images()

    def metric_for(issame_list):
        metric = FaceVerificationMetric()  # a fresh one: a failed evaluate() keeps its results
        metric.dataset_meta = dict(issame=issame_list)
        return metric

    with pytest.raises(ValueError, match='consecutive pairs'):
        run_metric(metric_for(issame[:-1]), data_samples(emb, flip))
    with pytest.raises(ValueError, match='sample_idx'):
        run_metric(metric_for(issame), data_samples(emb, flip)[:-1] + data_samples(emb, flip)[:1])
    with pytest.raises(ValueError, match='pred_embedding_flip'):
        run_metric(metric_for(issame), data_samples(emb, flip)[:20] + data_samples(emb)[20:])
    with pytest.raises(KeyError, match='pred_embedding'):
        FaceVerificationMetric().process(None, [dict(sample_idx=0)])
