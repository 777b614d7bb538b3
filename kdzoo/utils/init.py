"""Weight initialisation shared by kdzoo's modules: ResNet-style convolutional nets and transformer-style ones."""
import torch.nn as nn
from timm.layers import trunc_normal_


def init_linear_layers(module):
    """trunc-normal(0.02) linears with zero bias, LayerNorm (1, 0), as in ViT / arcface_torch."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_conv_layers(module, kaiming_types=(nn.Conv2d,)):
    """Kaiming-normal (fan_out, ReLU) ``kaiming_types`` with zero bias, BatchNorm2d (1, 0), as in torchvision's
    ResNet and arcface_torch."""
    for m in module.modules():
        if isinstance(m, kaiming_types):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
