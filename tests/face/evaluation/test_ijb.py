"""IJB-B/C 1:1 verification against hand-worked answers (insightface eval_ijbc.py, docs §3)."""
import math

import numpy as np
import pytest
import torch

from kdzoo.face.evaluation.verification import UndefinedMetricWarning, tpr_at_fpr
from kdzoo.face.evaluation.ijb import (IJB_FARS, IJBMetric, all_test_modes, evaluate_ijb, evaluate_ijb_modes,
                                  format_ijb_table,
                                  ijb_tpr_at_far, image_to_template_features, mode_tag, prepare_image_features,
                                  verify_templates)
from kdzoo.registry import METRICS


def test_template_aggregation_two_templates_three_media_by_hand():
    # template 10: media 100 = images (1,0) and (3,0) -> mean (2,0); media 200 = (0,4)
    #              sum (2,4) -> (1,2)/sqrt(5)          [averaging the 3 images would give (1,1)/sqrt(2)]
    # template 20: media 300 = (0,1) and (2,1) -> mean (1,1); media 100 (same id, other template) = (5,0)
    #              sum (6,1) -> (6,1)/sqrt(37)
    feats = np.array([[1, 0], [3, 0], [0, 4], [0, 1], [2, 1], [5, 0]], dtype=np.float32)
    templates = np.array([10, 10, 10, 20, 20, 20])
    medias = np.array([100, 100, 200, 300, 300, 100])
    order = np.array([3, 0, 5, 2, 4, 1])  # row order must not matter
    template_feats, unique_templates = image_to_template_features(feats[order], templates[order], medias[order])
    assert unique_templates.tolist() == [10, 20]
    assert np.allclose(template_feats, [np.array([1, 2]) / math.sqrt(5), np.array([6, 1]) / math.sqrt(37)])


def test_verify_templates_cosine_by_hand():
    template_feats = np.array([[1, 2], [6, 1]]) / np.array([[math.sqrt(5)], [math.sqrt(37)]])
    scores = verify_templates(template_feats, np.array([10, 20]), [10, 20, 10], [20, 10, 10], batch_size=2)
    # (1*6 + 2*1) / sqrt(5 * 37) both ways, 1 for a template with itself
    assert np.allclose(scores, [8 / math.sqrt(185), 8 / math.sqrt(185), 1])
    with pytest.raises(KeyError, match='no images'):
        verify_templates(template_feats, np.array([10, 20]), [10], [30])


def test_prepare_image_features_switches():
    img, flip, det = np.array([[3., 4.]]), np.array([[3., 4.]]), np.array([0.5])
    # F1: (6,8); N1 keeps the norm; D1 weights by 0.5 -> (3,4)
    assert np.allclose(prepare_image_features(img, flip, det), [[3, 4]])
    # normalize=True (N0): (6,8) -> (.6,.8) -> x 0.5
    assert np.allclose(prepare_image_features(img, flip, det, normalize=True), [[0.3, 0.4]])
    assert np.allclose(prepare_image_features(img, flip, det, use_flip=False, use_detector_score=False), [[3, 4]])
    with pytest.raises(ValueError, match='flipped'):
        prepare_image_features(img)
    with pytest.raises(ValueError, match='detector scores'):
        prepare_image_features(img, flip)


# 4 genuine, 10 impostor pairs, scores high to low: G G I G I I G I I I I I I I
FOURTEEN_LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
FOURTEEN_SCORES = np.linspace(1, 0.35, 14)


def test_ijb_tpr_at_far_closest_point_by_hand():
    # sklearn roc_curve (drop_intermediate=True) keeps (FAR, TPR):
    #   (0,0) (0,.25) (0,.5) (.1,.5) (.1,.75) (.3,.75) (.3,1) (1,1)
    # (.2,.75) lies on the flat segment (.1,.75)-(.3,.75) and is dropped.
    #   FAR .1: exact, highest TPR there -> 75
    #   FAR .2: .1 and .3 equally close -> insightface's flipud+min takes the later one, (.3,1) -> 100
    #   FAR .3: exact, highest TPR -> 100
    result = ijb_tpr_at_far(FOURTEEN_SCORES, FOURTEEN_LABELS, fars=(0.1, 0.2, 0.3))
    assert result == pytest.approx({0.1: 75.0, 0.2: 100.0, 0.3: 100.0})
    # without dropping, (.2,.75) is an exact hit; at-most-FAR reads the same point
    assert tpr_at_fpr(FOURTEEN_SCORES, FOURTEEN_LABELS, 0.2, rule='closest') == pytest.approx(0.75)
    assert tpr_at_fpr(FOURTEEN_SCORES, FOURTEEN_LABELS, 0.2) == pytest.approx(0.75)


def test_ijb_far_below_one_impostor_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning):
        result = ijb_tpr_at_far(FOURTEEN_SCORES, FOURTEEN_LABELS)  # 1e-6 ... 1e-2 need > 10 impostors
    assert [math.isnan(result[far]) for far in IJB_FARS] == [True] * 5 + [False]
    assert result[1e-1] == pytest.approx(75.0)


# Four images, three templates.  (feature, flip, template, media, detector score):
#   (1,0) (1,0) T1 M1 1.0 | (0,3) (0,1) T1 M2 0.1 | (2,0) (0,0) T2 M3 0.5 | (0,1) (0,1) T3 M4 1.0
# pairs: T1-T2 genuine, T1-T3 and T2-T3 impostor.
IMG = np.array([[1, 0], [0, 3], [2, 0], [0, 1]], dtype=np.float32)
IMG_FLIP = np.array([[1, 0], [0, 1], [0, 0], [0, 1]], dtype=np.float32)
TEMPLATES, MEDIAS = np.array([1, 1, 2, 3]), np.array([1, 2, 3, 4])
DETECTOR = np.array([1.0, 0.1, 0.5, 1.0])
P1, P2, LABELS = np.array([1, 1, 2]), np.array([2, 3, 3]), np.array([1, 0, 0])


def ijb_row(**switches):
    return evaluate_ijb(IMG, TEMPLATES, MEDIAS, P1, P2, LABELS, img_feats_flip=IMG_FLIP,
                        detector_scores=DETECTOR, fars=(0.5,), **switches)


def test_evaluate_ijb_switches_by_hand():
    # N1D1F1: T1 = (2,0) + (0,4)*0.1 = (2,.4); T2 = (2,0)*.5; T3 = (0,2): scores .98 (G), .20, 0 -> AUC 1
    # N1D0F1: T1 = (2,4): scores .447 (G), .894, 0: the genuine beats one impostor of two -> AUC .5
    # N0D1F1: T1 = (1,0) + (0,1)*.1: scores .995 (G), .0995, 0 -> AUC 1
    assert ijb_row().auc == pytest.approx(1.0)
    assert ijb_row(use_detector_score=False).auc == pytest.approx(0.5)
    assert ijb_row(normalize=True).auc == pytest.approx(1.0)
    # 2 impostors: FAR .5 -> ROC (0,0) (0,1) (1,1) after dropping (.5,1); 0 and 1 equally close -> 100
    assert ijb_row().tpr_at_far == pytest.approx({0.5: 100.0})


def test_format_ijb_table_prints_the_switches():
    rows = [ijb_row(), ijb_row(use_detector_score=False, name='no-det')]
    table = format_ijb_table(rows)
    assert 'N1D1F1' in table and 'N1D0F1' in table and 'normalize' in table and 'det_score' in table
    assert '100.00' in table and 'no-det' in table
    assert mode_tag(normalize=True, use_detector_score=False, use_flip=False) == 'N0D0F0'
    modes = all_test_modes()
    assert len(set(modes)) == 8 and modes[0] == (False, True, True)  # arcface_torch default first


def test_evaluate_ijb_modes_gives_one_row_per_mode():
    rows = evaluate_ijb_modes(IMG, TEMPLATES, MEDIAS, P1, P2, LABELS, IMG_FLIP, DETECTOR, fars=(0.5,))
    assert [(r.normalize, r.use_detector_score, r.use_flip) for r in rows] == all_test_modes()
    assert rows[0] == ijb_row()
    assert len(format_ijb_table(rows).splitlines()) == 3 + 8 + 1  # rule, header, rule; 8 rows; rule


def samples_for(img, flip=None):
    return [dict(sample_idx=i, pred_embedding=torch.from_numpy(img[i]),
                 **({} if flip is None else dict(pred_embedding_flip=torch.from_numpy(flip[i]))))
            for i in reversed(range(len(img)))]


def ijb_meta():
    return dict(templates=TEMPLATES, medias=MEDIAS, p1=P1, p2=P2, labels=LABELS, detector_scores=DETECTOR)


def test_ijb_metric_end_to_end():
    metric = METRICS.build(dict(type='IJBMetric', fars=(0.5,), prefix='ijbc'))
    metric.dataset_meta = ijb_meta()
    metric.process(None, samples_for(IMG, IMG_FLIP))
    assert metric.evaluate(4) == pytest.approx({'ijbc/tpr@far=5e-1': 100.0, 'ijbc/auc': 1.0})

    metric = IJBMetric(use_detector_score=False, fars=(0.5,))
    metric.dataset_meta = ijb_meta()
    metric.process(None, samples_for(IMG, IMG_FLIP))
    assert metric.evaluate(4)['ijb/auc'] == pytest.approx(0.5)


def test_ijb_metric_needs_flips_when_use_flip():
    metric = IJBMetric()
    metric.dataset_meta = ijb_meta()
    metric.process(None, samples_for(IMG))
    with pytest.raises(ValueError, match='use_flip=False'):
        metric.evaluate(4)
    metric = IJBMetric(use_flip=False, fars=(0.5,))
    metric.dataset_meta = ijb_meta()
    metric.process(None, samples_for(IMG))
    assert set(metric.evaluate(4)) == {'ijb/tpr@far=5e-1', 'ijb/auc'}
