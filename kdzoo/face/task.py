"""Face recognition as a kdzoo task: a margin-softmax identity loss in training, embeddings in evaluation.

A :class:`~kdzoo.face.models.FaceRecognizer` declares it (``kdzoo_task = 'face_recognition'``), so a
DistillModel whose student is one trains and evaluates it this way without naming the task.

- Loss: the recogniser's margin head on the raw embedding (``{'loss_arcface': ...}``, named by the head),
  on hard labels.
- Prediction: ``pred_embedding`` (and with ``flip_test``, ``pred_embedding_flip``, the embedding of the
  horizontally flipped faces) in each data sample, which the verification and IJB metrics fuse and score
  (docs/face_recognition.md). Any embedding model works, a teacher that is a bare backbone too.
- DDP: class centres sharded across ranks by :class:`~kdzoo.face.models.PartialFC` hold different classes on
  every rank, so DistributedDataParallel must not average them.
"""
import torch

from kdzoo.registry import TASKS
from kdzoo.tasks import BaseTask
from .models.heads import sharded_parameter_names
from .models.recognizer import write_embeddings


def embed_with_flip(model, inputs):
    """Embeddings of the faces and of their horizontal flips (the model's own ``embed_with_flip`` if it has one)."""
    if hasattr(model, 'embed_with_flip'):
        return model.embed_with_flip(inputs)
    return model(inputs), model(torch.flip(inputs, dims=[3]))


@TASKS.register_module(name=['face_recognition', 'FaceRecognitionTask'])
class FaceRecognitionTask(BaseTask):
    """Train a face recogniser with its margin head; evaluate its embeddings (module docstring).

    Args:
        flip_test: prediction also embeds the horizontally flipped faces, as the verification protocol
            requires (``DistillModel(flip_test=...)`` sets it); False embeds the faces only.
    """
    output = 'embedding'

    def __init__(self, flip_test=True):
        self.flip_test = bool(flip_test)

    def loss(self, model, output, labels, soft_labels):
        if not hasattr(model, 'task_loss'):
            raise TypeError(f"the face_recognition task trains a model with a margin head, but the student is a "
                            f"{type(model).__name__}; make it dict(type='FaceRecognizer', backbone=..., "
                            "head=dict(type='ArcFaceHead', num_classes=...))")
        return model.task_loss(output, labels)

    def predict(self, model, inputs, data_samples=None):
        if self.flip_test:
            embeddings, flips = embed_with_flip(model, inputs)
        else:
            embeddings, flips = model(inputs), None
        return write_embeddings(embeddings, data_samples, flips)

    def ddp_ignored_parameters(self, distill_model):
        return sharded_parameter_names(distill_model)
