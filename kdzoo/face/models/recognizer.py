"""FaceRecognizer: a face backbone producing a 512-d embedding, plus the margin head that trains it.

This is the model a face config names as student or teacher. ``forward`` returns the raw (un-normalised)
embedding: verification normalises it after flip fusion, IJB uses its norm as a quality weight
(docs/face_reference.md §2-3), and the margin head normalises it itself. ``kdzoo_task = 'face_recognition'``
makes a DistillModel with this student use :class:`~kdzoo.face.task.FaceRecognitionTask`, whose loss is
``task_loss`` and whose prediction writes the embeddings (and flipped ones) for the metrics.

Feature taps: the recognizer's :class:`~kdzoo.taps.TapContract` (``kdzoo_taps``) is its backbone's, with
every path under ``backbone.`` (``backbone.layer1`` ...): the stages, and for token backbones the patch grid
(of a ViT, or of a Swin's last stage) and Swin's ``'NHWC'`` layout. Bare backbone paths (``'blocks.3'``)
resolve too (the contract's ``module_root`` is ``backbone``).
"""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from kdzoo.registry import MODELS
from kdzoo.taps.contract import contract_of

__all__ = ['FaceRecognizer', 'write_embeddings']


def build_module(cfg: Union[dict, nn.Module], **defaults) -> nn.Module:
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return MODELS.build(cfg)


def set_sample_field(sample, name: str, value: torch.Tensor) -> None:
    if isinstance(sample, dict):
        sample[name] = value
    else:
        setattr(sample, name, value)


def write_embeddings(embeddings: torch.Tensor, data_samples: Optional[List] = None,
                     flip_embeddings: Optional[torch.Tensor] = None) -> List:
    """Write ``pred_embedding`` (and ``pred_embedding_flip``) into data samples (objects or dicts) for kdzoo's
    verification / IJB metrics; new dicts when none are given."""
    data_samples = data_samples if data_samples is not None else [{} for _ in range(embeddings.shape[0])]
    flips = flip_embeddings if flip_embeddings is not None else [None] * embeddings.shape[0]
    for sample, embedding, flip in zip(data_samples, embeddings.detach(), flips):
        set_sample_field(sample, 'pred_embedding', embedding)
        if flip is not None:
            set_sample_field(sample, 'pred_embedding_flip', flip.detach())
    return data_samples


@MODELS.register_module()
class FaceRecognizer(nn.Module):
    """Backbone -> embedding, with an optional margin head for the identity loss.

    Args:
        backbone: a config dict for ``kdzoo.registry.MODELS`` (e.g. ``dict(type='iresnet50')``) or a module.
        head: a margin head config (``ArcFaceHead``, ``CosFaceHead``, ``CombinedMarginHead``, ``PartialFC``)
            or module; its ``embed_dim`` defaults to the backbone's ``embedding_size``. None for a model that
            only embeds (a frozen teacher, evaluation).

    Weights: a teacher's checkpoint loads through DistillModel (``teachers=dict(t=dict(model=...,
    checkpoint=...))``). An arcface_torch backbone file (``backbone.pth``) has no ``backbone.`` prefix: load
    it into the bare backbone (a teacher can be ``dict(type='iresnet50')`` itself, its stages are declared)
    or with ``kdzoo.models.load_weights(recognizer.backbone, path)``.
    """

    kdzoo_task = 'face_recognition'   # the task a DistillModel trains this student for (kdzoo/face/task.py)

    def __init__(self, backbone: Union[dict, nn.Module], head: Union[dict, nn.Module, None] = None):
        super().__init__()
        self.backbone = build_module(backbone)
        self.embedding_size = getattr(self.backbone, 'embedding_size', None)
        head_defaults = {} if self.embedding_size is None else {'embed_dim': self.embedding_size}
        self.head = None if head is None else build_module(head, **head_defaults)
        self.kdzoo_taps = contract_of(self.backbone).under('backbone').validate(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) aligned faces -> (B, 512) embeddings, not normalised."""
        return self.backbone(x)

    def task_loss(self, embedding: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The margin-softmax identity loss, named by the head (``{'loss_arcface': ...}``)."""
        if self.head is None:
            raise RuntimeError('FaceRecognizer.task_loss needs a margin head: build it with head=dict(...), '
                               "e.g. dict(type='ArcFaceHead', num_classes=...)")
        return {self.head.loss_name: self.head(embedding, labels)}

    def embed_with_flip(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the faces and of their horizontal flips (the verification protocol's inputs)."""
        return self.backbone(x), self.backbone(torch.flip(x, dims=[3]))

    def predict_samples(self, embeddings: torch.Tensor, data_samples: Optional[List] = None,
                        flip_embeddings: Optional[torch.Tensor] = None) -> List:
        """:func:`write_embeddings` (what the face_recognition task's prediction writes)."""
        return write_embeddings(embeddings, data_samples, flip_embeddings)
