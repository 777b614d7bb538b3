"""Face verification on pair lists (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW ``.bin`` sets).

The protocol is insightface ``recognition/arcface_torch/eval/verification.py`` (see
``docs/face_recognition.md`` §2):

- embed every image and its horizontal flip; XNorm = mean L2 norm of all the raw embeddings (originals and
  flips, as ``verification.test`` averages over its ``embeddings_list``);
- final embedding = L2-normalise(e + e_flip); pair distance = squared Euclidean distance (0..4);
- a pair is called "same" when ``distance < threshold`` (strict);
- accuracy: 10 contiguous folds (sklearn ``KFold(shuffle=False)``); per fold the threshold of the grid
  ``np.arange(0, 4, 0.01)`` (0.00 … 3.99) that is most accurate on the other nine folds (first one on
  ties) scores the held-out fold; report mean and population std (``np.std``) of the fold accuracies;
- VAL@FAR: same folds, grid ``np.arange(0, 4, 0.001)``; per fold the threshold reaching the target FAR on
  the nine training folds is read off the (FAR, threshold) curve by linear interpolation, then VAL and FAR
  are measured on the held-out fold.

Accuracy, VAL and FAR are fractions in [0, 1], as insightface prints them. The ROC helpers
(:func:`roc_curve`, :func:`roc_auc`, :func:`tpr_at_fpr`) take similarity scores: higher means "same".
"""
import logging
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from kdzoo.registry import METRICS

ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)


class UndefinedMetricWarning(RuntimeWarning):
    """A rate was asked for that the pairs cannot measure (no negatives, FPR finer than 1/negatives, ...)."""


class KFoldAccuracy(NamedTuple):
    mean: float
    std: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray


class ValAtFar(NamedTuple):
    val: float
    val_std: float
    far: float


# ----------------------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------------------
def fuse_flip(emb, emb_flip):
    """Flip fusion of insightface: the sum ``emb + emb_flip`` (normalised afterwards, not before)."""
    emb, emb_flip = np.asarray(emb, dtype=np.float64), np.asarray(emb_flip, dtype=np.float64)
    if emb.shape != emb_flip.shape:
        raise ValueError(f"embedding shapes differ: {emb.shape} vs flipped {emb_flip.shape}")
    return emb + emb_flip


def xnorm(emb, emb_flip=None):
    """Mean L2 norm of the raw (unnormalised) embeddings; flips, when given, count as further rows.

    insightface's ``verification.test`` reports this as ``XNorm`` over both the original and the flipped
    embeddings; a collapsing or exploding norm shows up here before accuracy moves.
    """
    rows = [np.asarray(emb, dtype=np.float64)]
    if emb_flip is not None:
        rows.append(np.asarray(emb_flip, dtype=np.float64))
    return float(np.mean(np.linalg.norm(np.concatenate(rows, axis=0), axis=1)))


def l2_normalize(emb):
    """Rows divided by their L2 norm; all-zero rows stay zero (sklearn ``normalize`` semantics)."""
    emb = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=-1, keepdims=True)
    return emb / np.where(norms == 0, 1.0, norms)


def consecutive_pairs(num_pairs):
    """The ``.bin`` convention: pair i is images (2i, 2i+1)."""
    return np.stack([np.arange(0, 2 * num_pairs, 2), np.arange(1, 2 * num_pairs, 2)], axis=1)


def pair_squared_distances(emb, pairs):
    """Squared Euclidean distance of each (i, j) row of ``pairs``; 0..4 for unit-norm embeddings."""
    emb, pairs = np.asarray(emb, dtype=np.float64), np.asarray(pairs, dtype=np.int64)
    diff = emb[pairs[:, 0]] - emb[pairs[:, 1]]
    return np.sum(diff * diff, axis=1)


# ----------------------------------------------------------------------------------------------------------
# Threshold protocol (insightface verification.py)
# ----------------------------------------------------------------------------------------------------------
def contiguous_folds(num_items, n_folds=10):
    """(train, test) index arrays of sklearn ``KFold(n_splits, shuffle=False)``, as insightface's ``LFold``.

    Fold sizes are ``num_items // n_folds``, the first ``num_items % n_folds`` folds one larger.
    ``n_folds == 1`` trains and tests on everything (insightface's ``LFold`` special case).
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    indices = np.arange(num_items)
    if n_folds == 1:
        return [(indices, indices)]
    if num_items < n_folds:
        raise ValueError(f"cannot split {num_items} pairs into {n_folds} folds")
    sizes = np.full(n_folds, num_items // n_folds)
    sizes[:num_items % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    folds = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        test = indices[start:stop]
        train = np.concatenate([indices[:start], indices[stop:]])
        folds.append((train, test))
    return folds


def _accepted_counts(distances, issame, thresholds):
    """For each threshold t: (#genuine pairs with d < t, #impostor pairs with d < t)."""
    genuine = np.sort(distances[issame])
    impostor = np.sort(distances[~issame])
    # side='left' counts the elements strictly below t, matching insightface's np.less(dist, threshold).
    return (np.searchsorted(genuine, thresholds, side='left'),
            np.searchsorted(impostor, thresholds, side='left'))


def threshold_accuracies(distances, issame, thresholds):
    """Accuracy of ``predict same = distance < t`` for every t in ``thresholds``."""
    distances, issame = _as_pairs(distances, issame)
    true_accepts, false_accepts = _accepted_counts(distances, issame, thresholds)
    true_rejects = np.count_nonzero(~issame) - false_accepts
    return (true_accepts + true_rejects) / distances.size


def kfold_accuracy(distances, issame, n_folds=10, thresholds=None):
    """insightface's verification accuracy: best grid threshold on 9 folds, accuracy on the 10th.

    Args:
        distances: squared Euclidean distances of the pairs (smaller means "same").
        issame: one boolean per pair.
        n_folds: contiguous folds, no shuffle (sklearn ``KFold(shuffle=False)``).
        thresholds: the grid; defaults to insightface's ``np.arange(0, 4, 0.01)``.

    Returns:
        :class:`KFoldAccuracy` with the mean and population std of the fold accuracies, the fold accuracies
        and the threshold each fold used (the first of equally accurate thresholds, as ``np.argmax``).
    """
    distances, issame = _as_pairs(distances, issame)
    thresholds = ACCURACY_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    accuracies, chosen = [], []
    for train, test in contiguous_folds(distances.size, n_folds):
        best = thresholds[np.argmax(threshold_accuracies(distances[train], issame[train], thresholds))]
        accuracies.append(threshold_accuracies(distances[test], issame[test], [best])[0])
        chosen.append(best)
    accuracies = np.asarray(accuracies)
    return KFoldAccuracy(float(np.mean(accuracies)), float(np.std(accuracies)), accuracies, np.asarray(chosen))


def val_far(distances, issame, threshold):
    """(VAL, FAR) at ``distance < threshold``: accepted share of genuine and of impostor pairs.

    A rate whose denominator is empty is nan (insightface divides by zero there).
    """
    distances, issame = _as_pairs(distances, issame)
    accepted = distances < threshold
    num_genuine, num_impostor = np.count_nonzero(issame), np.count_nonzero(~issame)
    val = np.count_nonzero(accepted & issame) / num_genuine if num_genuine else float('nan')
    far = np.count_nonzero(accepted & ~issame) / num_impostor if num_impostor else float('nan')
    return val, far


def threshold_for_far(fars, thresholds, far_target):
    """The threshold at which the FAR curve reaches ``far_target``, by linear interpolation.

    ``fars`` is non-decreasing along ``thresholds``. insightface calls ``interp1d(fars, thresholds,
    kind='slinear')``, which scipy >= 1.9 refuses because the FAR curve repeats values (insightface#2152);
    this reproduces what scipy <= 1.8 returned: an exact hit gives the LARGEST threshold with that FAR,
    otherwise interpolate between the last grid point below the target and the first one above it.
    Below the reach of the curve (max FAR < target) insightface uses threshold 0.0 (accept nothing).
    """
    fars, thresholds = np.asarray(fars, dtype=np.float64), np.asarray(thresholds, dtype=np.float64)
    if fars.max() < far_target:
        return 0.0
    below = np.flatnonzero(fars <= far_target)
    if below.size == 0:
        return float(thresholds[0])
    i = below[-1]
    if fars[i] == far_target or i + 1 == fars.size:
        return float(thresholds[i])
    weight = (far_target - fars[i]) / (fars[i + 1] - fars[i])
    return float(thresholds[i] + weight * (thresholds[i + 1] - thresholds[i]))


def val_at_far(distances, issame, far_target=1e-3, n_folds=10, thresholds=None):
    """insightface's VAL@FAR: threshold fitted to ``far_target`` on 9 folds, VAL/FAR on the 10th.

    Args:
        distances: squared Euclidean distances of the pairs.
        issame: one boolean per pair.
        far_target: the false accept rate to reach (insightface: 1e-3).
        n_folds: contiguous folds, as :func:`kfold_accuracy`.
        thresholds: the grid; defaults to insightface's ``np.arange(0, 4, 0.001)``.

    Returns:
        :class:`ValAtFar`: mean VAL, population std of VAL and mean FAR over the folds. Training folds
        without impostor pairs, or test folds without genuine (impostor) pairs, make the result nan, with
        an :class:`UndefinedMetricWarning` (insightface divides by zero there).
    """
    distances, issame = _as_pairs(distances, issame)
    thresholds = VAL_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    vals, fars = [], []
    for train, test in contiguous_folds(distances.size, n_folds):
        num_impostor = np.count_nonzero(~issame[train])
        if num_impostor == 0:  # no FAR curve to fit a threshold to
            val, far = float('nan'), float('nan')
        else:
            _, false_accepts = _accepted_counts(distances[train], issame[train], thresholds)
            threshold = threshold_for_far(false_accepts / num_impostor, thresholds, far_target)
            val, far = val_far(distances[test], issame[test], threshold)
        vals.append(val)
        fars.append(far)
    vals, fars = np.asarray(vals), np.asarray(fars)
    if np.isnan(vals).any() or np.isnan(fars).any():
        warnings.warn('VAL@FAR: some fold lacks genuine or impostor pairs; the result is nan',
                      UndefinedMetricWarning, stacklevel=2)
    else:
        warn_if_far_unresolved(distances.size, issame, n_folds, far_target)
    return ValAtFar(float(np.mean(vals)), float(np.std(vals)), float(np.mean(fars)))


def warn_if_far_unresolved(num_pairs, issame, n_folds, far_target):
    """Warn when a training fold has too few impostor pairs for one false accept at ``far_target``.

    The value itself stays insightface's; but with fewer than 1 / far_target impostors the fitted threshold
    only separates the impostors seen, so VAL reads optimistic (often 1.0 on a small pair set).
    """
    fewest = min(np.count_nonzero(~issame[train]) for train, _ in contiguous_folds(num_pairs, n_folds))
    needed = int(np.ceil(1 / far_target))
    if fewest < needed:
        warnings.warn(f"VAL@FAR={format_rate(far_target)}: a training fold holds only {fewest} impostor pairs, "
                      f"fewer than the {needed} that one false accept at that rate needs, so the threshold "
                      "cannot be fitted to the target and VAL reads optimistic; use a larger pair set or a "
                      "larger far_target", UndefinedMetricWarning, stacklevel=3)


def _as_pairs(distances, issame):
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    issame = np.asarray(issame).astype(bool).reshape(-1)
    if distances.size != issame.size:
        raise ValueError(f"{distances.size} pair scores but {issame.size} labels")
    if distances.size == 0:
        raise ValueError('no pairs to evaluate')
    return distances, issame


# ----------------------------------------------------------------------------------------------------------
# ROC (similarity scores: higher means "same")
# ----------------------------------------------------------------------------------------------------------
def roc_counts(scores, labels, drop_intermediate=False):
    """Cumulative (false positives, true positives, thresholds) over the distinct scores, highest first,
    starting from (0, 0, +inf); as sklearn ``roc_curve`` builds them."""
    scores, labels = _as_pairs(scores, labels)
    order = np.argsort(-scores, kind='mergesort')
    scores, labels = scores[order], labels[order]
    last_of_each_value = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(labels)[last_of_each_value]
    fps = 1 + last_of_each_value - tps
    thresholds = scores[last_of_each_value]
    if drop_intermediate and fps.size > 2:
        # sklearn's default: drop points lying on a straight segment between their neighbours.
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    return np.r_[0, fps], np.r_[0, tps], np.r_[np.inf, thresholds]


def _rate(counts, total, what):
    if total == 0:
        warnings.warn(f"no {what} pairs: the {'TPR' if what == 'genuine' else 'FPR'} is undefined (nan)",
                      UndefinedMetricWarning, stacklevel=3)
        return np.full(counts.shape, np.nan)
    return counts / total


def roc_curve(scores, labels, drop_intermediate=False):
    """ROC of similarity ``scores`` against boolean ``labels`` (True = genuine pair).

    Same points as sklearn ``roc_curve``: one per distinct score (tied scores form one point), the first
    being (0, 0) at threshold +inf; ``drop_intermediate=True`` is sklearn's default (used by the IJB code).
    A class with no pairs makes its rate nan, with an :class:`UndefinedMetricWarning`.

    Returns:
        (fpr, tpr, thresholds), with ``score >= threshold`` predicted genuine.
    """
    fps, tps, thresholds = roc_counts(scores, labels, drop_intermediate)
    return _rate(fps, fps[-1], 'impostor'), _rate(tps, tps[-1], 'genuine'), thresholds


def roc_auc(scores, labels):
    """Area under the ROC by the trapezoid rule (a tie between a genuine and an impostor counts 1/2)."""
    fps, tps, _ = roc_counts(scores, labels)
    return auc_from_counts(fps, tps)


def auc_from_counts(fps, tps):
    """Trapezoid area under cumulative (false, true) positive counts; nan, with a warning, if a class is
    empty. Dropping collinear points (``drop_intermediate``) does not change it."""
    fpr, tpr = _rate(fps, fps[-1], 'impostor'), _rate(tps, tps[-1], 'genuine')
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float('nan')
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(scores, labels, fpr, rule='at_most', drop_intermediate=False):
    """True positive rate at a target false positive rate, read off the ROC without interpolation.

    Rules:
        ``'at_most'``: the highest TPR among ROC points with FPR <= target (an operating point that meets
        the target).
        ``'closest'``: insightface's IJB rule (``eval_ijbc.py``): the point whose FPR is closest to the
        target, the highest TPR among equally close points (its ``np.flipud`` before the ``min``).

    A target below 1 / (number of impostor pairs) cannot be resolved by the pairs: the result is nan with
    an :class:`UndefinedMetricWarning` (insightface would silently report the TPR at FPR 0 there).
    """
    fps, tps, _ = roc_counts(scores, labels, drop_intermediate)
    return tpr_from_counts(fps, tps, fpr, rule)


def tpr_from_counts(fps, tps, fpr, rule='at_most'):
    """:func:`tpr_at_fpr` on cumulative ROC counts, so that one sort serves several targets."""
    if rule not in ('at_most', 'closest'):
        raise ValueError(f"rule must be 'at_most' or 'closest', got {rule!r}")
    if not 0 < fpr <= 1:
        raise ValueError(f"target FPR must be in (0, 1], got {fpr}")
    num_impostor, num_genuine = int(fps[-1]), int(tps[-1])
    if num_genuine == 0 or num_impostor == 0:
        warnings.warn(f"TPR@FPR={fpr:g}: {num_genuine} genuine and {num_impostor} impostor pairs; nan",
                      UndefinedMetricWarning, stacklevel=3)
        return float('nan')
    # Compare counts, not float rates: k/n vs a decimal literal can differ by an ulp.
    allowed_false_positives = np.floor(fpr * num_impostor + 1e-9)
    if allowed_false_positives < 1:
        warnings.warn(f"TPR@FPR={fpr:g} needs at least {int(np.ceil(1 / fpr))} impostor pairs, got "
                      f"{num_impostor}; reporting nan", UndefinedMetricWarning, stacklevel=3)
        return float('nan')
    if rule == 'at_most':
        return float(tps[fps <= allowed_false_positives].max() / num_genuine)
    distance = np.abs(fps / num_impostor - fpr)
    closest = np.flatnonzero(distance == distance.min())[-1]
    return float(tps[closest] / num_genuine)


def format_rate(value):
    """``1e-3`` → ``'1e-3'``, ``2.5e-4`` → ``'2.5e-4'``: the spelling used in metric names."""
    return np.format_float_scientific(value, trim='-', exp_digits=1)


# ----------------------------------------------------------------------------------------------------------
# mmengine metric
# ----------------------------------------------------------------------------------------------------------
def _field(sample, key):
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


def _to_numpy(value):
    if hasattr(value, 'detach'):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32).reshape(-1)


def embedding_result(sample):
    """What a metric keeps of one data sample: its index, embedding and (optional) flipped embedding."""
    embedding = _field(sample, 'pred_embedding')
    index = _field(sample, 'sample_idx')
    if embedding is None or index is None:
        raise KeyError("a data sample needs 'pred_embedding' and 'sample_idx' "
                       f"(got {type(sample).__name__} without them)")
    flip = _field(sample, 'pred_embedding_flip')
    return dict(sample_idx=int(index), embedding=_to_numpy(embedding),
                embedding_flip=None if flip is None else _to_numpy(flip))


def stack_results_by_index(results):
    """(embeddings, flipped embeddings or None) ordered by ``sample_idx`` 0..N-1.

    Distributed collection can return samples out of order; indices must then cover 0..N-1 exactly once.
    """
    results = sorted(results, key=lambda r: r['sample_idx'])
    indices = np.array([r['sample_idx'] for r in results])
    if not np.array_equal(indices, np.arange(len(results))):
        missing = sorted(set(range(int(indices.max(initial=-1)) + 1)) - set(indices.tolist()))
        duplicated = sorted({int(i) for i in indices[np.flatnonzero(np.diff(indices) == 0)]})
        raise ValueError(f"sample_idx must cover 0..N-1 once each; missing {missing[:10]}, "
                         f"duplicated {duplicated[:10]} (of {len(results)} samples)")
    embeddings = np.stack([r['embedding'] for r in results])
    has_flip = [r['embedding_flip'] is not None for r in results]
    if any(has_flip) and not all(has_flip):
        raise ValueError(f"{sum(has_flip)} of {len(results)} samples have 'pred_embedding_flip'; "
                         'give it for all samples or for none')
    flips = np.stack([r['embedding_flip'] for r in results]) if all(has_flip) else None
    return embeddings, flips


@METRICS.register_module()
class FaceVerificationMetric(BaseMetric):
    """insightface-style verification metric for pair sets (``docs/face_recognition.md`` §2).

    Each data sample carries ``pred_embedding`` (1-D), optionally ``pred_embedding_flip``, and
    ``sample_idx``. ``dataset_meta`` gives ``issame`` (one boolean per pair) and optionally ``pairs``, a
    (P, 2) array of sample indices; without ``pairs`` pair i is samples (2i, 2i+1) (the ``.bin`` layout).

    Returns (fractions, prefixed ``<prefix>/`` by mmengine): ``acc``, ``acc_std`` (10-fold
    ``Accuracy-Flip`` when flips are given), ``xnorm``, ``val@far=1e-3``, ``tpr@fpr=<f>`` for each of
    ``fprs`` (rule ``'at_most'`` of :func:`tpr_at_fpr`; nan when the set has too few impostor pairs) and
    ``auc``. The protocol choices are logged next to the numbers.
    """
    default_prefix = 'verification'

    def __init__(self, n_folds: int = 10, far_target: float = 1e-3, fprs: Sequence[float] = (1e-2,),
                 collect_device: str = 'cpu', prefix: Optional[str] = None, collect_dir: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.n_folds = n_folds
        self.far_target = far_target
        self.fprs = tuple(fprs)

    def process(self, data_batch, data_samples) -> None:
        # One entry per sample, so mmengine's collect_results can drop the distributed padding by size.
        self.results.extend(embedding_result(sample) for sample in data_samples)

    def _pairs_and_labels(self, num_samples):
        meta = self.dataset_meta or {}
        if meta.get('issame') is None:
            raise KeyError("FaceVerificationMetric needs dataset_meta['issame']")
        issame = np.asarray(meta['issame']).astype(bool).reshape(-1)
        if meta.get('pairs') is None:
            if num_samples != 2 * issame.size:
                raise ValueError(f"{num_samples} embeddings for {issame.size} consecutive pairs "
                                 f"(expected {2 * issame.size})")
            return consecutive_pairs(issame.size), issame
        pairs = np.asarray(meta['pairs'], dtype=np.int64).reshape(-1, 2)
        if pairs.shape[0] != issame.size:
            raise ValueError(f"{pairs.shape[0]} pairs but {issame.size} issame labels")
        if pairs.min() < 0 or pairs.max() >= num_samples:
            raise ValueError(f"pairs index samples 0..{pairs.max()} but only {num_samples} were evaluated")
        return pairs, issame

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        embeddings, flips = stack_results_by_index(results)
        pairs, issame = self._pairs_and_labels(len(embeddings))
        fused = embeddings if flips is None else fuse_flip(embeddings, flips)
        distances = pair_squared_distances(l2_normalize(fused), pairs)
        similarities = 1 - distances / 2  # cosine of unit vectors; same ranking as -distance

        accuracy = kfold_accuracy(distances, issame, self.n_folds)
        val = val_at_far(distances, issame, self.far_target, self.n_folds)
        metrics = {'acc': accuracy.mean, 'acc_std': accuracy.std, 'xnorm': xnorm(embeddings, flips),
                   f'val@far={format_rate(self.far_target)}': val.val}
        for fpr in self.fprs:
            metrics[f'tpr@fpr={format_rate(fpr)}'] = tpr_at_fpr(similarities, issame, fpr)
        metrics['auc'] = roc_auc(similarities, issame)
        self._log_protocol(metrics, accuracy, val, flips is not None, len(issame))
        return metrics

    def _log_protocol(self, metrics, accuracy, val, used_flip, num_pairs):
        name = self.prefix or 'verification'
        mode = 'Accuracy-Flip' if used_flip else 'Accuracy (no flip)'
        print_log(f"[{name}] {mode}: {accuracy.mean:.5f}+-{accuracy.std:.5f}  XNorm: {metrics['xnorm']:.5f}  "
                  f"VAL@FAR={format_rate(self.far_target)}: {val.val:.5f}+-{val.val_std:.5f} "
                  f"(FAR {val.far:.5f})  AUC: {metrics['auc']:.5f}  | {num_pairs} pairs, flip fusion="
                  f"{used_flip}, L2-normalised, squared L2 distance, {self.n_folds} contiguous folds, "
                  'threshold grid arange(0, 4, 0.01)', logger='current', level=logging.INFO)
