"""IJB-B / IJB-C 1:1 template verification, as insightface ``recognition/arcface_torch/eval_ijbc.py``.

Pipeline (``docs/face_recognition.md`` §3, arcface_torch defaults in brackets):

1. per image, embedding + flipped embedding summed [``use_flip=True``, insightface test mode F1];
2. per-image L2 normalisation [``normalize=False``: the norm is kept as a quality weight, mode N1];
3. multiplied by the detector (faceness) score [``use_detector_score=True``, mode D1];
4. per template: images of one media (video or still) averaged, the media features summed, the sum
   L2-normalised (:func:`image_to_template_features`);
5. pairs scored by cosine (:func:`verify_templates`); ROC; for each FAR in 1e-6 … 1e-1 the TPR at the ROC
   point whose FAR is closest to it, no interpolation, in percent (:func:`ijb_tpr_at_far`).

The three switches move results by about half a point, so every result is printed with them
(:func:`mode_tag`, :func:`format_ijb_table`).
"""
import logging
from itertools import product
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from kdzoo.face.evaluation.verification import (auc_from_counts, embedding_result, format_rate, l2_normalize,
                                                roc_counts, stack_results_by_index, tpr_from_counts)
from kdzoo.registry import METRICS

IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


class IJBResult(NamedTuple):
    """One row of the IJB table: TPR (percent) per FAR, AUC (fraction) and the switches that produced it."""
    tpr_at_far: Dict[float, float]
    auc: float
    normalize: bool
    use_detector_score: bool
    use_flip: bool
    name: str = ''


def mode_tag(normalize, use_detector_score, use_flip):
    """insightface's ``TestMode(N?D?F?)`` tag. N1 means the image norm is KEPT (``normalize=False``)."""
    return f"N{int(not normalize)}D{int(bool(use_detector_score))}F{int(bool(use_flip))}"


def all_test_modes():
    """The 8 (normalize, use_detector_score, use_flip) combinations, arcface_torch's default first."""
    return list(product((False, True), (True, False), (True, False)))


def prepare_image_features(img_feats, img_feats_flip=None, detector_scores=None, normalize=False,
                           use_detector_score=True, use_flip=True):
    """Per-image features before template pooling (steps 1-3 of the module docstring)."""
    feats = np.asarray(img_feats, dtype=np.float64)
    if use_flip:
        if img_feats_flip is None:
            raise ValueError('use_flip=True needs the flipped-image embeddings; pass use_flip=False without them')
        feats = feats + np.asarray(img_feats_flip, dtype=np.float64)
    if normalize:
        feats = l2_normalize(feats)
    if use_detector_score:
        if detector_scores is None:
            raise ValueError('use_detector_score=True needs detector scores (name_5pts_score.txt, last column)')
        scores = np.asarray(detector_scores, dtype=np.float64).reshape(-1)
        if scores.size != feats.shape[0]:
            raise ValueError(f"{scores.size} detector scores for {feats.shape[0]} images")
        feats = feats * scores[:, None]
    return feats


def _group_sums(feats, group_of_row):
    """Row sums and row counts per group; groups numbered 0..G-1 in sorted order."""
    order = np.argsort(group_of_row, kind='stable')
    sorted_groups = group_of_row[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.diff(np.r_[starts, sorted_groups.size])
    return np.add.reduceat(feats[order], starts, axis=0), counts, sorted_groups[starts]


def image_to_template_features(img_feats, templates, medias):
    """Template features as insightface's ``image2template_feature``.

    Within each template the images of one media are averaged, the media features summed (not averaged:
    a template with more media does not lose weight per media, and the sum is normalised anyway), and the
    sum L2-normalised.

    Args:
        img_feats: (N, D) image features from :func:`prepare_image_features`.
        templates: (N,) template id of each image.
        medias: (N,) media id of each image (``face_tid_mid.txt``, third column).

    Returns:
        (template_norm_feats (T, D), unique_templates (T,) sorted ascending).
    """
    feats = np.asarray(img_feats, dtype=np.float64)
    templates, medias = np.asarray(templates).reshape(-1), np.asarray(medias).reshape(-1)
    if not feats.shape[0] == templates.size == medias.size:
        raise ValueError(f"{feats.shape[0]} features, {templates.size} template ids, {medias.size} media ids")
    unique_templates, template_of_image = np.unique(templates, return_inverse=True)
    _, media_of_image = np.unique(medias, return_inverse=True)
    # Sorting by (template, media) makes each template's media groups contiguous.
    template_media = template_of_image.astype(np.int64) * (media_of_image.max() + 1) + media_of_image
    media_sums, media_counts, keys = _group_sums(feats, template_media)
    media_means = media_sums / media_counts[:, None]
    template_sums, _, _ = _group_sums(media_means, keys // (media_of_image.max() + 1))
    return l2_normalize(template_sums), unique_templates


def verify_templates(template_norm_feats, unique_templates, p1, p2, batch_size=100_000):
    """Cosine score of each template pair (p1[i], p2[i]), computed ``batch_size`` pairs at a time."""
    unique_templates = np.asarray(unique_templates)
    rows1, rows2 = _template_rows(unique_templates, p1), _template_rows(unique_templates, p2)
    scores = np.empty(rows1.size, dtype=np.float64)
    for start in range(0, rows1.size, batch_size):
        batch = slice(start, start + batch_size)
        scores[batch] = np.sum(template_norm_feats[rows1[batch]] * template_norm_feats[rows2[batch]], axis=1)
    return scores


def _template_rows(unique_templates, template_ids):
    template_ids = np.asarray(template_ids).reshape(-1)
    rows = np.clip(np.searchsorted(unique_templates, template_ids), 0, unique_templates.size - 1)
    unknown = unique_templates[rows] != template_ids
    if unknown.any():
        raise KeyError(f"{np.count_nonzero(unknown)} pair template ids have no images, e.g. "
                       f"{template_ids[unknown][:5].tolist()}")
    return rows


def ijb_tpr_at_far(scores, labels, fars=IJB_FARS):
    """TPR in percent at each FAR, insightface's IJB rule: the ROC point (sklearn ``roc_curve`` with its
    default ``drop_intermediate=True``) with the closest FAR, highest TPR among equally close ones.

    A FAR below 1 / (number of impostor pairs) is nan with an ``UndefinedMetricWarning``.
    """
    fps, tps, _ = roc_counts(scores, labels, drop_intermediate=True)
    return _closest_tprs_percent(fps, tps, fars)


def _closest_tprs_percent(fps, tps, fars):
    return {far: 100 * tpr_from_counts(fps, tps, far, rule='closest') for far in fars}


def evaluate_ijb(img_feats, templates, medias, p1, p2, labels, img_feats_flip=None, detector_scores=None,
                 normalize=False, use_detector_score=True, use_flip=True, fars=IJB_FARS, name=''):
    """The whole 1:1 protocol for one switch setting; returns an :class:`IJBResult` row."""
    feats = prepare_image_features(img_feats, img_feats_flip, detector_scores, normalize,
                                   use_detector_score, use_flip)
    template_feats, unique_templates = image_to_template_features(feats, templates, medias)
    scores = verify_templates(template_feats, unique_templates, p1, p2)
    fps, tps, _ = roc_counts(scores, np.asarray(labels).astype(bool), drop_intermediate=True)
    return IJBResult(_closest_tprs_percent(fps, tps, fars), auc_from_counts(fps, tps), bool(normalize),
                     bool(use_detector_score), bool(use_flip), name)


def evaluate_ijb_modes(img_feats, templates, medias, p1, p2, labels, img_feats_flip=None, detector_scores=None,
                       modes=None, fars=IJB_FARS, name=''):
    """:func:`evaluate_ijb` once per (normalize, use_detector_score, use_flip) in ``modes`` (default: all 8);
    the rows go to :func:`format_ijb_table`."""
    return [evaluate_ijb(img_feats, templates, medias, p1, p2, labels, img_feats_flip, detector_scores,
                         normalize, use_detector_score, use_flip, fars, name)
            for normalize, use_detector_score, use_flip in (modes or all_test_modes())]


def format_ijb_table(rows: Sequence[IJBResult], fars: Optional[Sequence[float]] = None):
    """A text table, one line per result, the switches printed next to the TPRs (percent, 2 decimals)."""
    fars = tuple(fars or rows[0].tpr_at_far)
    header = ['method', 'mode', 'normalize', 'det_score', 'flip'] + [format_rate(f) for f in fars] + ['AUC%']
    lines = [[row.name or '-', mode_tag(row.normalize, row.use_detector_score, row.use_flip),
              str(row.normalize), str(row.use_detector_score), str(row.use_flip)]
             + [f"{row.tpr_at_far[f]:.2f}" for f in fars] + [f"{100 * row.auc:.2f}"] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]
    render = lambda cells: '| ' + ' | '.join(c.rjust(w) for c, w in zip(cells, widths)) + ' |'  # noqa: E731
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    return '\n'.join([rule, render(header), rule] + [render(line) for line in lines] + [rule])


@METRICS.register_module()
class IJBMetric(BaseMetric):
    """IJB-B/C 1:1 verification as an mmengine metric.

    Data samples: ``pred_embedding``, ``pred_embedding_flip`` (needed when ``use_flip``) and ``sample_idx``
    (row in the image list). ``dataset_meta``: ``templates`` and ``medias`` (one per image), ``p1``, ``p2``,
    ``labels`` (one per pair) and ``detector_scores`` (one per image, needed when ``use_detector_score``).

    Returns ``tpr@far=<f>`` in percent for each of ``fars`` and ``auc`` (fraction); logs the table with the
    switches and the insightface test mode.
    """
    default_prefix = 'ijb'

    def __init__(self, normalize: bool = False, use_detector_score: bool = True, use_flip: bool = True,
                 fars: Sequence[float] = IJB_FARS, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.normalize, self.use_detector_score, self.use_flip = normalize, use_detector_score, use_flip
        self.fars = tuple(fars)

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(embedding_result(sample) for sample in data_samples)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        meta = self.dataset_meta or {}
        missing = [k for k in ('templates', 'medias', 'p1', 'p2', 'labels') if meta.get(k) is None]
        if missing:
            raise KeyError(f"IJBMetric needs dataset_meta keys {missing}")
        embeddings, flips = stack_results_by_index(results)
        row = evaluate_ijb(embeddings, meta['templates'], meta['medias'], meta['p1'], meta['p2'],
                           meta['labels'], img_feats_flip=flips, detector_scores=meta.get('detector_scores'),
                           normalize=self.normalize, use_detector_score=self.use_detector_score,
                           use_flip=self.use_flip, fars=self.fars, name=self.prefix or 'ijb')
        print_log('IJB 1:1 verification, TPR (%) at FAR\n' + format_ijb_table([row]), logger='current',
                  level=logging.INFO)
        metrics = {f'tpr@far={format_rate(far)}': tpr for far, tpr in row.tpr_at_far.items()}
        metrics['auc'] = row.auc
        return metrics
