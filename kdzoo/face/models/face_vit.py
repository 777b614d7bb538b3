"""Face ViT: arcface_torch's Vision Transformer for 112x112 faces, built from timm blocks.

Papers: Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021); the face configuration is
insightface ``recognition/arcface_torch/backbones/vit.py`` (used for the WebFace42M / Glint360K ViT models,
and by Partial FC, An et al., CVPR 2022).

Differences from an ImageNet ViT: 9x9 patches on a 112x112 face (12x12 = 144 tokens; the last 4 pixel rows
and columns are dropped), NO class token, no qkv bias, ReLU6 in the MLP, and a feature head that keeps
every token's position: LayerNorm -> flatten (144*D) -> Linear(144*D -> D) -> BN1d -> Linear(D -> 512) -> BN1d.
Blocks are ``timm.models.vision_transformer.Block`` so their attention modules are timm ``Attention``
(``attn_drop`` / ``fused_attn``), which kdzoo's attention taps rely on. Parameter names match arcface_torch
(``patch_embed.proj``, ``pos_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
``norm``, ``feature``, ``mask_token``), so its checkpoints load as they are.
"""
from functools import partial
from typing import Optional, Tuple

import torch
from torch import nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract
from kdzoo.taps.stages import plain_stage_blocks
from kdzoo.utils.init import init_linear_layers

__all__ = ['FacePatchEmbed', 'FaceViT', 'face_vit_t', 'face_vit_s', 'face_vit_b', 'face_vit_l']

# arcface_torch's vit_t / vit_s / vit_b / vit_l (all with 8 heads and drop-path 0.1).
FACE_VIT_ARCHS = {
    'tiny': dict(embed_dim=256, depth=12, num_heads=8),
    'small': dict(embed_dim=512, depth=12, num_heads=8),
    'base': dict(embed_dim=512, depth=24, num_heads=8),
    'large': dict(embed_dim=768, depth=24, num_heads=8),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}


def resolve_arch(arch: str, archs: dict, family: str) -> str:
    name = ARCH_ALIASES.get(arch, arch)
    if name not in archs:
        raise ValueError(f'{family} arch must be one of {sorted(archs)} (or {sorted(ARCH_ALIASES)}), got {arch!r}')
    return name


def stage_block_indices(depth: int) -> Tuple[int, ...]:
    """0-based blocks whose outputs stand for stages 1-4 of a plain ViT: 2, 4, 10, 12 of 12 (the OFA / FOFA
    rule), scaled to other depths (4, 8, 20, 24 of 24). Below 6 blocks the scaled rule repeats blocks, so
    kdzoo's strictly increasing plain rule is used, and every block is a stage below 4 blocks."""
    if depth >= 6:
        return depth // 6 - 1, depth // 3 - 1, 5 * depth // 6 - 1, depth - 1
    if depth >= 4:
        return tuple(block - 1 for block in plain_stage_blocks(depth))
    return tuple(range(depth))


class FacePatchEmbed(nn.Module):
    """Non-overlapping conv patch embedding (kernel = stride = patch size); leftover border pixels are dropped."""

    def __init__(self, img_size: int = 112, patch_size: int = 9, in_channels: int = 3, embed_dim: int = 512):
        super().__init__()
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


@MODELS.register_module()
class FaceViT(nn.Module):
    """arcface_torch's face ViT (vit_t / vit_s / vit_b / vit_l) for 112x112 input.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or ``'t'``, ``'s'``, ``'b'``, ``'l'``).
        num_features: embedding size.
        img_size, patch_size: 112 and 9 give a 12x12 token grid.
        drop_path_rate: stochastic depth, rising linearly from 0 to this over the blocks.
        drop_rate, attn_drop_rate: dropout after the position embedding / in the MLP and projections, and on
            the attention probabilities.
        mask_ratio: fraction of tokens randomly replaced by a learned mask token during training
            (arcface_torch trains with 0.1). Default 0: with masking the blocks see fewer tokens, so their
            outputs no longer lie on the 12x12 grid the feature taps expect.
        pool: ``'flatten'`` (arcface_torch head, position-aware) or ``'mean'`` (average the normalised
            tokens, then Linear(D -> D) -> BN1d -> Linear(D -> 512) -> BN1d; far fewer parameters).
        embed_dim, depth, num_heads, mlp_ratio: override the arch.

    Stage taps: the outputs of blocks 2, 4, 10, 12 (of 12), as (B, 144, D) tokens on a 12x12 grid, no prefix
    tokens.
    """
    def __init__(self, arch: str = 'small', num_features: int = 512, img_size: int = 112, patch_size: int = 9,
                 drop_path_rate: float = 0.1, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 mask_ratio: float = 0.0, pool: str = 'flatten', embed_dim: Optional[int] = None,
                 depth: Optional[int] = None, num_heads: Optional[int] = None, mlp_ratio: float = 4.0):
        super().__init__()
        settings = FACE_VIT_ARCHS[resolve_arch(arch, FACE_VIT_ARCHS, 'FaceViT')]
        embed_dim = embed_dim or settings['embed_dim']
        depth = depth or settings['depth']
        num_heads = num_heads or settings['num_heads']
        if pool not in ('flatten', 'mean'):
            raise ValueError(f"FaceViT pool must be 'flatten' or 'mean', got {pool!r}")
        self.embed_dim = embed_dim
        self.num_features = self.embedding_size = num_features
        self.mask_ratio = mask_ratio
        self.pool = pool

        self.patch_embed = FacePatchEmbed(img_size, patch_size, 3, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.kdzoo_taps = TapContract(stages=tuple(f'blocks.{i}' for i in stage_block_indices(depth)),
                                      grid=self.patch_embed.grid_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        drop_path_rates = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()
        self.blocks = nn.ModuleList([
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=False,
                  proj_drop=drop_rate, attn_drop=attn_drop_rate, drop_path=drop_path_rates[i],
                  act_layer=nn.ReLU6, norm_layer=norm_layer)
            for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        head_in = embed_dim * self.num_patches if pool == 'flatten' else embed_dim
        # eps 2e-5 as in arcface_torch (mxnet's BN default).
        self.feature = nn.Sequential(
            nn.Linear(head_in, embed_dim, bias=False),
            nn.BatchNorm1d(embed_dim, eps=2e-5),
            nn.Linear(embed_dim, num_features, bias=False),
            nn.BatchNorm1d(num_features, eps=2e-5))
        self.init_weights()

    def init_weights(self) -> None:
        """arcface_torch's init: trunc-normal(0.02) linears and position embedding, LayerNorm (1, 0)."""
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        init_linear_layers(self)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {'pos_embed', 'mask_token'}

    def random_masking(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keep a random (1 - mask_ratio) subset of tokens per sample (MAE-style); also return the
        permutation that puts them back."""
        batch, num_tokens, dim = x.shape
        num_keep = int(num_tokens * (1 - self.mask_ratio))
        shuffle = torch.argsort(torch.rand(batch, num_tokens, device=x.device), dim=1)
        restore = torch.argsort(shuffle, dim=1)
        kept = torch.gather(x, 1, shuffle[:, :num_keep, None].expand(-1, -1, dim))
        return kept, restore

    def restore_masking(self, x: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """Fill the dropped positions with the mask token and undo the shuffle."""
        mask_tokens = self.mask_token.expand(x.shape[0], restore.shape[1] - x.shape[1], -1)
        x = torch.cat([x, mask_tokens], dim=1)
        return torch.gather(x, 1, restore[..., None].expand(-1, -1, x.shape[2]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) -> normalised tokens (B, 144, D)."""
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed)
        masking = self.training and self.mask_ratio > 0
        if masking:
            x, restore = self.random_masking(x)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if masking:
            x = self.restore_masking(x, restore)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if self.pool == 'flatten' else x.mean(dim=1)
        return self.feature(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register_module()
def face_vit_t(**kwargs) -> FaceViT:
    """arcface_torch ``vit_t``: D=256, 12 blocks, 8 heads."""
    return FaceViT(arch='tiny', **kwargs)


@MODELS.register_module()
def face_vit_s(**kwargs) -> FaceViT:
    """arcface_torch ``vit_s``: D=512, 12 blocks, 8 heads."""
    return FaceViT(arch='small', **kwargs)


@MODELS.register_module()
def face_vit_b(**kwargs) -> FaceViT:
    """arcface_torch ``vit_b``: D=512, 24 blocks, 8 heads."""
    return FaceViT(arch='base', **kwargs)


@MODELS.register_module()
def face_vit_l(**kwargs) -> FaceViT:
    """arcface_torch ``vit_l``: D=768, 24 blocks, 8 heads."""
    return FaceViT(arch='large', **kwargs)
