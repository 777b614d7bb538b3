"""IResNet: the improved ResNet of ArcFace, as laid out in insightface's ``recognition/arcface_torch``.

Papers: Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition" (CVPR 2019), which
introduced the BN-Conv-BN-PReLU-Conv-BN residual unit and the BN-Dropout-FC-BN embedding head; Duta et al.,
"Improved Residual Networks for Image and Video Recognition" (ICPR 2020) for the name.
Reference code: insightface ``recognition/arcface_torch/backbones/iresnet.py``.

For a 112x112 face the stem keeps full resolution (3x3 conv, stride 1, no max-pool) and each of the four
stages halves it: 112 -> 56 -> 28 -> 14 -> 7. The 512x7x7 map is flattened (25,088 values) and projected
to a 512-d embedding. Parameter and buffer names match arcface_torch, so its checkpoints load as they are.
"""
from typing import Optional, Sequence

import torch
from torch import nn

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract

__all__ = ['IBasicBlock', 'IResNet', 'iresnet18', 'iresnet34', 'iresnet50', 'iresnet100', 'iresnet200']

# Blocks per stage, as in arcface_torch's get_model('r18' ... 'r200').
IRESNET_DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
STAGE_WIDTHS = (64, 128, 256, 512)
BN_EPS = 1e-5


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class IBasicBlock(nn.Module):
    """ArcFace residual unit: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the shortcut.

    The stride sits on the second convolution; the shortcut is a strided conv1x1 + BN when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels, stride)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride),
                                            nn.BatchNorm2d(out_channels, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def make_stage(in_channels: int, out_channels: int, num_blocks: int) -> nn.Sequential:
    """One stage: a stride-2 block that changes width, then ``num_blocks - 1`` identity-shape blocks."""
    blocks = [IBasicBlock(in_channels, out_channels, stride=2)]
    blocks += [IBasicBlock(out_channels, out_channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


@MODELS.register_module()
class IResNet(nn.Module):
    """IResNet-18/34/50/100/200 face backbone for 112x112 input (arcface_torch layout).

    Args:
        depth: one of 18, 34, 50, 100, 200; or give ``layers`` (blocks per stage) directly.
        num_features: embedding size.
        dropout: dropout on the flattened 25,088-d map before the FC (arcface_torch default 0).
        zero_init_residual: zero the last BN of each residual branch so every block starts as identity.
        img_size: input side; the FC expects a (img_size / 16)^2 map, i.e. 7x7 for 112.
        layers: blocks per stage, overriding ``depth``.

    ``forward`` returns the (un-normalised) embedding; ``forward_features`` the 512x7x7 layer4 map.
    """
    kdzoo_taps = TapContract(stages=('layer1', 'layer2', 'layer3', 'layer4'))

    def __init__(self, depth: int = 50, num_features: int = 512, dropout: float = 0.0,
                 zero_init_residual: bool = False, img_size: int = 112,
                 layers: Optional[Sequence[int]] = None):
        super().__init__()
        if layers is None:
            if depth not in IRESNET_DEPTHS:
                raise ValueError(f'IResNet depth must be one of {sorted(IRESNET_DEPTHS)}, got {depth}')
            layers = IRESNET_DEPTHS[depth]
        self.num_features = self.embedding_size = num_features
        self.final_grid = (img_size // 16, img_size // 16)

        self.conv1 = conv3x3(3, STAGE_WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        self.layer1 = make_stage(STAGE_WIDTHS[0], STAGE_WIDTHS[0], layers[0])
        self.layer2 = make_stage(STAGE_WIDTHS[0], STAGE_WIDTHS[1], layers[1])
        self.layer3 = make_stage(STAGE_WIDTHS[1], STAGE_WIDTHS[2], layers[2])
        self.layer4 = make_stage(STAGE_WIDTHS[2], STAGE_WIDTHS[3], layers[3])

        final_map_size = STAGE_WIDTHS[3] * self.final_grid[0] * self.final_grid[1]
        self.bn2 = nn.BatchNorm2d(STAGE_WIDTHS[3], eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(final_map_size, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool = False) -> None:
        """arcface_torch's init: conv weights N(0, 0.1), BN (1, 0); the embedding BN's scale is frozen at 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # bn3 closes the residual branch; arcface_torch zeroes bn2, a leftover of torchvision's naming,
            # which does not make the block an identity.
            for m in self.modules():
                if isinstance(m, IBasicBlock):
                    nn.init.constant_(m.bn3.weight, 0)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register_module()
def iresnet18(**kwargs) -> IResNet:
    return IResNet(depth=18, **kwargs)


@MODELS.register_module()
def iresnet34(**kwargs) -> IResNet:
    return IResNet(depth=34, **kwargs)


@MODELS.register_module()
def iresnet50(**kwargs) -> IResNet:
    return IResNet(depth=50, **kwargs)


@MODELS.register_module()
def iresnet100(**kwargs) -> IResNet:
    return IResNet(depth=100, **kwargs)


@MODELS.register_module()
def iresnet200(**kwargs) -> IResNet:
    return IResNet(depth=200, **kwargs)
