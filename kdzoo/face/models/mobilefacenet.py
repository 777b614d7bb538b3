"""MobileFaceNet and arcface_torch's wider "mbf" variants.

Paper: Chen, Liu, Gao, Han, "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on
Mobile Devices" (CCBR 2018, arXiv 1804.07573). Reference code: insightface
``recognition/arcface_torch/backbones/mobilefacenet.py`` (``mbf``, ``mbf_large``) and Tencent TFace's
MobileFaceNet, the 1.19M-parameter network of the face KD literature (EKD, URFM + APT baselines).

Both come from one layout: a stride-2 3x3 conv (112 -> 56), a 3x3 (depthwise or grouped) conv, then three
stride-2 inverted-bottleneck "DepthWise" units each followed by residual ones (56 -> 28 -> 14 -> 7), a 1x1
conv to 512 channels and the GDC head (global depthwise 7x7 conv -> linear -> BN1d). ``mbf`` doubles the
widths but keeps the bottleneck expansions (128/256/512 channels), so its depthwise convs become grouped.
Names follow arcface_torch, so its mbf checkpoints load as they are.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract
from kdzoo.utils.init import init_conv_layers

__all__ = ['ConvBlock', 'LinearBlock', 'DepthWise', 'Residual', 'GDC', 'MobileFaceNet',
           'mobilefacenet', 'mbf', 'mbf_large']

# width scale, blocks of (stage-1 conv, residual groups at 28, 14, 7), affine final BN1d.
# 'mfn' is the 1.19M-parameter network (docs/face_reference.md §5; its embedding BN has no affine);
# 'mbf' / 'mbf_large' are arcface_torch's get_mbf / get_mbf_large.
MOBILEFACENET_ARCHS = {
    'mfn': dict(scale=1, blocks=(1, 4, 6, 2), affine_embedding_bn=False),
    'mbf': dict(scale=2, blocks=(1, 4, 6, 2), affine_embedding_bn=True),
    'mbf_large': dict(scale=4, blocks=(2, 8, 12, 4), affine_embedding_bn=True),
}
# Hidden widths of the inverted bottlenecks; fixed whatever the width scale (arcface_torch's ``groups``).
EXPANSION_28, EXPANSION_14, EXPANSION_DOWN_TO_7 = 128, 256, 512
FINAL_CHANNELS = 512


class ConvBlock(nn.Module):
    """conv (no bias) -> BN -> PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    """conv (no bias) -> BN, no activation (the linear bottleneck of MobileNetV2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 in -> hidden (BN, PReLU); 3x3 depthwise (stride) (BN, PReLU); 1x1 -> out (BN).

    ``hidden`` is arcface_torch's ``groups`` argument: the expansion width, which is also the depthwise group
    count. With ``residual`` the input is added to the output (shapes must then match).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, stride: int = 2,
                 residual: bool = False):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_channels, hidden),
            ConvBlock(hidden, hidden, kernel=3, stride=stride, padding=1, groups=hidden),
            LinearBlock(hidden, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class Residual(nn.Module):
    """``num_blocks`` shape-preserving residual DepthWise units."""

    def __init__(self, channels: int, num_blocks: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(channels, channels, hidden, stride=1, residual=True)
                                      for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise convolution head: 7x7 depthwise conv + BN -> flatten -> linear (no bias) -> BN1d.

    A learned, position-aware pooling: unlike global average pooling it can weight the centre of the face
    differently from its border (MobileFaceNets §3.2).
    """

    def __init__(self, num_features: int = 512, channels: int = FINAL_CHANNELS, grid: int = 7,
                 affine_bn: bool = True):
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(channels, channels, kernel=grid, groups=channels),
            nn.Flatten(),
            nn.Linear(channels, num_features, bias=False),
            nn.BatchNorm1d(num_features, affine=affine_bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_body(scale: int, blocks: Sequence[int]) -> Tuple[nn.ModuleList, int]:
    """The convolutional body up to the 7x7 map, as arcface_torch's ``layers`` list; returns it and its width."""
    c56, c28, c14, c7 = 64 * scale, 64 * scale, 128 * scale, 128 * scale
    if blocks[0] == 1:
        # 64 groups: depthwise for the base width, grouped (2 channels per group) for mbf.
        stage1_tail = ConvBlock(c56, c56, kernel=3, padding=1, groups=64)
    else:
        stage1_tail = Residual(c56, blocks[0], hidden=EXPANSION_28)
    layers = nn.ModuleList([
        ConvBlock(3, c56, kernel=3, stride=2, padding=1),              # 0: 112 -> 56
        stage1_tail,                                                   # 1: 56, stage 1
        DepthWise(c56, c28, EXPANSION_28, stride=2),                   # 2: 56 -> 28
        Residual(c28, blocks[1], hidden=EXPANSION_28),                 # 3: 28, stage 2
        DepthWise(c28, c14, EXPANSION_14, stride=2),                   # 4: 28 -> 14
        Residual(c14, blocks[2], hidden=EXPANSION_14),                 # 5: 14, stage 3
        DepthWise(c14, c7, EXPANSION_DOWN_TO_7, stride=2),             # 6: 14 -> 7
        Residual(c7, blocks[3], hidden=EXPANSION_14),                  # 7: 7
    ])
    return layers, c7


@MODELS.register_module()
class MobileFaceNet(nn.Module):
    """MobileFaceNet face backbone for 112x112 input, 512-d embedding through a GDC head.

    Args:
        arch: ``'mfn'`` (the 1.19M-parameter MobileFaceNet, ~227M MACs), ``'mbf'`` (arcface_torch's default
            mobile model: widths x2) or ``'mbf_large'`` (widths x4, more blocks).
        num_features: embedding size.
        scale, blocks: override the arch's width scale and residual block counts.

    Stage taps: ``layers.1`` (56x56), ``layers.3`` (28x28), ``layers.5`` (14x14) and ``conv_sep``, the
    512x7x7 map before GDC (the "last convolutional map" URFM distils).
    """
    kdzoo_taps = TapContract(stages=('layers.1', 'layers.3', 'layers.5', 'conv_sep'))

    def __init__(self, arch: str = 'mfn', num_features: int = 512, scale: Optional[int] = None,
                 blocks: Optional[Sequence[int]] = None):
        super().__init__()
        if arch not in MOBILEFACENET_ARCHS:
            raise ValueError(f'MobileFaceNet arch must be one of {sorted(MOBILEFACENET_ARCHS)}, got {arch!r}')
        settings = MOBILEFACENET_ARCHS[arch]
        self.arch = arch
        self.num_features = self.embedding_size = num_features
        self.layers, body_channels = build_body(scale or settings['scale'], blocks or settings['blocks'])
        self.conv_sep = ConvBlock(body_channels, FINAL_CHANNELS)
        self.features = GDC(num_features, affine_bn=settings['affine_embedding_bn'])
        self.init_weights()

    def init_weights(self) -> None:
        """arcface_torch's init: Kaiming-normal (fan_out) convs and linears, BN (1, 0)."""
        init_conv_layers(self, kaiming_types=(nn.Conv2d, nn.Linear))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.conv_sep(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register_module()
def mobilefacenet(**kwargs) -> MobileFaceNet:
    """The 1.19M-parameter MobileFaceNet (TFace / EKD; URFM + APT student)."""
    return MobileFaceNet(arch='mfn', **kwargs)


@MODELS.register_module()
def mbf(**kwargs) -> MobileFaceNet:
    """arcface_torch's ``mbf``: MobileFaceNet with doubled widths and grouped 3x3 convs."""
    return MobileFaceNet(arch='mbf', **kwargs)


@MODELS.register_module()
def mbf_large(**kwargs) -> MobileFaceNet:
    """arcface_torch's ``mbf_large``: widths x4, blocks (2, 8, 12, 4)."""
    return MobileFaceNet(arch='mbf_large', **kwargs)
