"""Image classification: cross-entropy on logits (soft targets for mixed batches), softmax predictions."""
import torch.nn.functional as F

from kdzoo.registry import TASKS
from .base import BaseTask


@TASKS.register_module(name=['classification', 'ClassificationTask'])
class ClassificationTask(BaseTask):
    """The student's forward gives class logits.

    Args:
        label_smoothing: of the cross-entropy loss (``DistillModel(label_smoothing=...)`` sets it).

    Loss ``loss_cls``: cross-entropy against the hard labels, or against the soft labels of a batch mixed by
    mixup/cutmix. Prediction: mmpretrain ``DataSample`` with ``pred_score`` (softmax) and ``pred_label``.
    """

    def __init__(self, label_smoothing=0.0):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def loss(self, model, output, labels, soft_labels):
        target = soft_labels if soft_labels is not None else labels
        return {'loss_cls': F.cross_entropy(output, target, label_smoothing=self.label_smoothing)}

    def predict(self, model, inputs, data_samples=None):
        from mmpretrain.structures import DataSample
        output = model(inputs)
        data_samples = data_samples or [DataSample() for _ in range(output.shape[0])]
        for sample, score in zip(data_samples, output.softmax(1)):
            sample.set_pred_score(score).set_pred_label(score.argmax().unsqueeze(0))
        return data_samples
