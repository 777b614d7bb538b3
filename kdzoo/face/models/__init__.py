"""Face recognition models: backbones (IResNet, MobileFaceNet, face ViT, face Swin), margin heads
(ArcFace, CosFace, combined, Partial FC) and the FaceRecognizer that joins them. Importing this package
registers all of them in ``kdzoo.registry.MODELS``."""
from .iresnet import IBasicBlock, IResNet, iresnet18, iresnet34, iresnet50, iresnet100, iresnet200
from .mobilefacenet import MobileFaceNet, mbf, mbf_large, mobilefacenet
from .face_vit import FaceViT, face_vit_b, face_vit_l, face_vit_s, face_vit_t
from .face_swin import FaceSwin, face_swin_b, face_swin_s, face_swin_t
from .heads import (MARGIN_PRESETS, ArcFaceHead, CombinedMargin, CombinedMarginHead, CosFaceHead, PartialFC,
                    exclude_sharded_centres_from_ddp, sharded_parameter_names)
from .recognizer import FaceRecognizer

__all__ = [
    'IBasicBlock', 'IResNet', 'iresnet18', 'iresnet34', 'iresnet50', 'iresnet100', 'iresnet200',
    'MobileFaceNet', 'mobilefacenet', 'mbf', 'mbf_large',
    'FaceViT', 'face_vit_t', 'face_vit_s', 'face_vit_b', 'face_vit_l',
    'FaceSwin', 'face_swin_t', 'face_swin_s', 'face_swin_b',
    'MARGIN_PRESETS', 'CombinedMargin', 'CombinedMarginHead', 'ArcFaceHead', 'CosFaceHead', 'PartialFC',
    'exclude_sharded_centres_from_ddp', 'sharded_parameter_names',
    'FaceRecognizer',
]
