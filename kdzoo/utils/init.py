"""Weight initialisation shared by kdzoo's transformer-style modules."""
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
