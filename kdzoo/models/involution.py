"""Involution and RedNet: Li et al., "Involution: Inverting the Inherence of Convolution for Visual
Recognition", CVPR 2021 (docs/methods/civt.md, 'Involution and RedNet'). Reference code: ``d-li14/involution``
(``cls/mmcls/models/backbones/rednet.py``).

Involution is spatially specific and channel-agnostic: at every output location a small network generates
one K×K kernel per group of ``group_channels`` channels from the (average-pooled) input there, and all
channels of the group are aggregated with that kernel over their K×K neighbourhood. Here it is written
with ``unfold`` (no CuPy kernel) and always runs in fp32, also under autocast, because the reference kernel
has no fp16 path and the CivT code turns mixed precision off for it (docs/methods/civt.md, 'Official code and kdzoo switches'). The unfolded
input holds K² copies of the map, so at 56×56 with K = 7 memory is heavy; ``RedNet(grad_checkpointing=
True)`` recomputes each block in the backward pass instead of storing it.

RedNet is a ResNet-v1.5 bottleneck network whose 3×3 convs are 7×7 involutions carrying the block's
stride; its stem is 3×3/2 conv (3→32) + BN + ReLU → involution (K = 3) → BN → ReLU → 3×3 conv (32→64) +
BN + ReLU → 3×3/2 max-pool. Parameter names follow the reference backbone, so its released ImageNet
checkpoints load after :func:`checkpoint_filter_fn`.

Use as a kdzoo teacher or student directly: ``dict(type='rednet26', num_classes=100)``. The model declares a
:class:`~kdzoo.taps.TapContract` (``kdzoo_taps``: stages layer1..layer4, classifier ``fc``), so the taps
``stage1``..``stage4``, ``pre_logits`` and ``logits`` resolve without a wrapper; ``dict(type='ImportedModel',
path='kdzoo.models.involution:rednet26', num_classes=10)`` works as well.
"""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract
from kdzoo.utils.init import init_conv_layers

__all__ = ['Involution', 'InvolutionBottleneck', 'RedNet', 'checkpoint_filter_fn',
           'rednet26', 'rednet38', 'rednet50', 'rednet101', 'rednet152']

# Bottleneck blocks per stage (reference ``arch_settings``).
REDNET_DEPTHS = {
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
EXPANSION = 4
STEM_CHANNELS = 64
STAGE_STRIDES = (1, 2, 2, 2)


class ConvBnAct(nn.Module):
    """Conv, then optionally BN and ReLU; the conv has a bias only without BN (mmcv ``ConvModule`` names)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, norm=True, act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                              bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Involution(nn.Module):
    """Involution with one generated K×K kernel per group and output location.

    Args:
        channels: input = output channels; must be a multiple of ``group_channels``.
        kernel_size: K, odd; the neighbourhood is zero-padded by (K − 1) / 2.
        stride: output stride; the kernel generator sees the input average-pooled by ``stride``.
        group_channels: channels sharing one kernel (G = channels / group_channels groups).
        reduction_ratio: the generator's bottleneck is channels / reduction_ratio wide.

    ``conv1`` (1×1 conv + BN + ReLU) and ``conv2`` (1×1 conv with bias → K²·G) generate the kernels.
    """

    def __init__(self, channels, kernel_size=7, stride=1, group_channels=16, reduction_ratio=4):
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"involution: channels ({channels}) must be a multiple of group_channels "
                             f"({group_channels})")
        if kernel_size % 2 == 0:
            raise ValueError(f"involution: kernel_size must be odd, got {kernel_size}")
        if channels < reduction_ratio:
            raise ValueError(f"involution: channels ({channels}) must be >= reduction_ratio ({reduction_ratio})")
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.conv1 = ConvBnAct(channels, channels // reduction_ratio)
        self.conv2 = ConvBnAct(channels // reduction_ratio, kernel_size ** 2 * self.groups, norm=False, act=False)
        # ceil_mode gives ceil(H / stride) rows, as many as the strided unfold; on even sizes it is the
        # reference's plain AvgPool2d, on odd sizes the reference would fail to reshape.
        self.avgpool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def generate_kernels(self, x):
        """(B, G, K², H', W'): the kernel of every group at every output location."""
        kernels = self.conv2(self.conv1(self.avgpool(x)))
        b, _, h, w = kernels.shape
        return kernels.view(b, self.groups, self.kernel_size ** 2, h, w)

    def aggregate(self, x, kernels):
        """Weight each group's K×K neighbourhoods by its kernels: (B, C, H, W) → (B, C, H', W')."""
        b, h, w = kernels.shape[0], kernels.shape[-2], kernels.shape[-1]
        k = self.kernel_size
        patches = F.unfold(x, k, padding=(k - 1) // 2, stride=self.stride)
        patches = patches.view(b, self.groups, self.group_channels, k * k, h, w)
        return (kernels.unsqueeze(2) * patches).sum(3).view(b, self.channels, h, w)

    def forward(self, x):
        compute_dtype = self.conv1.conv.weight.dtype   # fp32 unless the module itself was converted
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(compute_dtype)
            return self.aggregate(x, self.generate_kernels(x))

    def extra_repr(self):
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}")


class InvolutionBottleneck(nn.Module):
    """1×1 conv → 7×7 involution (carries the stride) → 1×1 conv (×4 channels), BN + ReLU after each,
    plus the shortcut (1×1 conv with the stride + BN when the shape changes)."""

    def __init__(self, in_channels, out_channels, stride=1, kernel_size=7):
        super().__init__()
        mid_channels = out_channels // EXPANSION
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = Involution(mid_channels, kernel_size, stride)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))
        self.grad_checkpointing = False

    def residual(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut

    def forward(self, x):
        # Checkpointing inside the block keeps the stage modules' own forward (and kdzoo's stage hooks).
        if self.grad_checkpointing and torch.is_grad_enabled() and x.requires_grad:
            return self.relu(checkpoint(self.residual, x, use_reentrant=False))
        return self.relu(self.residual(x))


def make_stage(in_channels, out_channels, num_blocks, stride):
    blocks = [InvolutionBottleneck(in_channels, out_channels, stride)]
    blocks += [InvolutionBottleneck(out_channels, out_channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


@MODELS.register_module()
class RedNet(nn.Module):
    """RedNet-26/38/50/101/152 classifier (docs/methods/civt.md, 'Involution and RedNet').

    Args:
        depth: one of 26, 38, 50, 101, 152.
        num_classes: classifier outputs; 0 keeps the pooled 2048-d feature as the output.
        in_chans: input channels.
        zero_init_last: zero the last BN of every block, so each block starts as its shortcut.
        grad_checkpointing: recompute blocks in the backward pass (saves the unfolded maps' memory).

    Init follows the reference: convs Kaiming-normal (fan_out, ReLU) with zero bias, BN (1, 0), the
    classifier N(0, 0.01) with zero bias.
    """
    kdzoo_taps = TapContract(stages=('layer1', 'layer2', 'layer3', 'layer4'), classifier='fc')

    def __init__(self, depth=50, num_classes=1000, in_chans=3, zero_init_last=True, grad_checkpointing=False):
        super().__init__()
        if depth not in REDNET_DEPTHS:
            raise ValueError(f"RedNet depth must be one of {sorted(REDNET_DEPTHS)}, got {depth}")
        self.depth = depth
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            ConvBnAct(in_chans, STEM_CHANNELS // 2, kernel_size=3, stride=2),
            Involution(STEM_CHANNELS // 2, kernel_size=3, stride=1),
            nn.BatchNorm2d(STEM_CHANNELS // 2),
            nn.ReLU(inplace=True),
            ConvBnAct(STEM_CHANNELS // 2, STEM_CHANNELS, kernel_size=3),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = STEM_CHANNELS
        for index, (num_blocks, stride) in enumerate(zip(REDNET_DEPTHS[depth], STAGE_STRIDES)):
            out_channels = STEM_CHANNELS * EXPANSION * 2 ** index
            self.add_module(f'layer{index + 1}', make_stage(in_channels, out_channels, num_blocks, stride))
            in_channels = out_channels
        self.num_features = in_channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights(zero_init_last)
        self.set_grad_checkpointing(grad_checkpointing)

    def init_weights(self, zero_init_last=True):
        init_conv_layers(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, InvolutionBottleneck):
                    nn.init.zeros_(m.bn3.weight)
        if isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, std=0.01)
            nn.init.zeros_(self.fc.bias)

    def set_grad_checkpointing(self, enable=True):
        for m in self.modules():
            if isinstance(m, InvolutionBottleneck):
                m.grad_checkpointing = enable

    def get_classifier(self):
        return self.fc

    def forward_features(self, x):
        x = self.maxpool(self.stem(x))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x, pre_logits=False):
        x = self.global_pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a reference (mmcls) RedNet checkpoint onto :class:`RedNet`: ``backbone.*`` → ``*``,
    ``head.fc.*`` → ``fc.*``."""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            renamed[key[len('backbone.'):]] = value
        elif key.startswith('head.fc.'):
            renamed['fc.' + key[len('head.fc.'):]] = value
    return renamed


@MODELS.register_module()
def rednet26(**kwargs) -> RedNet:
    return RedNet(depth=26, **kwargs)


@MODELS.register_module()
def rednet38(**kwargs) -> RedNet:
    return RedNet(depth=38, **kwargs)


@MODELS.register_module()
def rednet50(**kwargs) -> RedNet:
    return RedNet(depth=50, **kwargs)


@MODELS.register_module()
def rednet101(**kwargs) -> RedNet:
    return RedNet(depth=101, **kwargs)


@MODELS.register_module()
def rednet152(**kwargs) -> RedNet:
    return RedNet(depth=152, **kwargs)
