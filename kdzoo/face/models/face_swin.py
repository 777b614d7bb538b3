"""Face Swin Transformer for 112x112 input: timm's ``SwinTransformer`` with a face embedding head.

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (ICCV 2021).
Face use: FaceX-Zoo (Wang et al., 2021, arXiv 2101.04407) trains Swin-T/S on 224x224-upsampled faces with an
embedding head LayerNorm -> flatten (49*C) -> Linear(49*C -> 512) -> BN1d (``backbone/Swin_Transformer.py``);
URFM + APT (Zhao et al., ACM MM 2023) distils from a face Swin-S whose last stage is a 7x7 grid.

Here the face stays at 112x112 and the patch size is 2 instead of 4, so the four stages see the same
56/28/14/7 grids (and cost the same FLOPs) as ImageNet Swin at 224 with window 7. The backbone is timm's
class itself (only the head is replaced), so stage, block and attention module paths are timm's:
``layers.{0..3}`` stage outputs in NHWC, ``layers.i.blocks.j.attn`` ``WindowAttention`` modules with
``attn_drop`` / ``fused_attn``, which the APT adapter and the attention taps build on.
"""
from typing import Optional

import torch
from torch import nn
from timm.layers import trunc_normal_
from timm.models.swin_transformer import SwinTransformer

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract

from .face_vit import resolve_arch

__all__ = ['FaceSwin', 'face_swin_t', 'face_swin_s', 'face_swin_b']

# Swin-T / S / B widths, depths and heads (Liu et al. Table 1).
FACE_SWIN_ARCHS = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}


@MODELS.register_module()
class FaceSwin(SwinTransformer):
    """Swin-T/S/B for 112x112 faces: patch 2, window 7, stages at 56/28/14/7, 512-d embedding.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``).
        num_features: embedding size.
        img_size, patch_size, window_size: 112, 2 and 7 put a 7x7 grid (one window) in the last stage.
        pool: ``'flatten'`` (FaceX-Zoo head, keeps position: Linear(49*C -> 512)) or ``'mean'``
            (average the 49 tokens, Linear(C -> 512)).
        dropout: dropout before the embedding Linear.
        drop_path_rate, attn_drop_rate, ...: passed on to timm's ``SwinTransformer``.

    ``forward_features`` returns timm's final-LayerNorm-ed NHWC map (B, 7, 7, 8C); ``forward`` the
    un-normalised embedding.
    """
    def __init__(self, arch: str = 'small', num_features: int = 512, img_size: int = 112, patch_size: int = 2,
                 window_size: int = 7, pool: str = 'flatten', dropout: float = 0.0,
                 drop_path_rate: float = 0.1, embed_dim: Optional[int] = None, **timm_kwargs):
        settings = dict(FACE_SWIN_ARCHS[resolve_arch(arch, FACE_SWIN_ARCHS, 'FaceSwin')])
        if embed_dim is not None:
            settings['embed_dim'] = embed_dim
        settings.update({k: timm_kwargs.pop(k) for k in ('depths', 'num_heads') if k in timm_kwargs})
        if pool not in ('flatten', 'mean'):
            raise ValueError(f"FaceSwin pool must be 'flatten' or 'mean', got {pool!r}")
        # num_classes=0 and global_pool='' turn timm's classifier head into an identity.
        super().__init__(img_size=img_size, patch_size=patch_size, window_size=window_size, num_classes=0,
                         global_pool='', drop_path_rate=drop_path_rate, **settings, **timm_kwargs)
        self.pool = pool
        self.embedding_size = num_features
        grid = self.layers[-1].output_resolution
        self.kdzoo_taps = TapContract(stages=('layers.0', 'layers.1', 'layers.2', 'layers.3'), layout='NHWC',
                                      grid=tuple(grid))
        head_in = self.num_features * (grid[0] * grid[1] if pool == 'flatten' else 1)
        self.feature = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(head_in, num_features),
            nn.BatchNorm1d(num_features))
        trunc_normal_(self.feature[1].weight, std=0.02)
        nn.init.zeros_(self.feature[1].bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, 7, 7, C) normalised map -> (B, 512) embedding (``pre_logits`` is accepted for timm's API)."""
        x = x.flatten(1) if self.pool == 'flatten' else x.mean(dim=(1, 2))
        return self.feature(x)


@MODELS.register_module()
def face_swin_t(**kwargs) -> FaceSwin:
    return FaceSwin(arch='tiny', **kwargs)


@MODELS.register_module()
def face_swin_s(**kwargs) -> FaceSwin:
    """The URFM + APT teacher configuration (Swin-S, 7x7 last stage at 112x112)."""
    return FaceSwin(arch='small', **kwargs)


@MODELS.register_module()
def face_swin_b(**kwargs) -> FaceSwin:
    return FaceSwin(arch='base', **kwargs)
