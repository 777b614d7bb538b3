"""The one canonical form every tapped tensor takes: a map, tokens, a vector or an attention map."""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

KINDS = ('map', 'tokens', 'vector', 'attn')


@dataclass(frozen=True)
class FeatureSpec:
    """What shape probing learns about a tap, batch dimension left out.

    ``shape`` is (C, H, W) for a map, (N, C) for tokens (prefix tokens included), (C,) for a vector and
    (heads, N, N) for attention. ``grid`` is the (h, w) of the patch tokens or of the map.
    """
    name: str
    kind: str
    shape: Tuple[int, ...]
    num_prefix: int = 0
    grid: Optional[Tuple[int, int]] = None

    @property
    def channels(self):
        return self.shape[0] if self.kind in ('map', 'vector') else self.shape[-1]

    @property
    def num_patches(self):
        return self.grid[0] * self.grid[1] if self.grid else None

    def describe(self):
        extra = f', {self.num_prefix} prefix token(s)' if self.num_prefix else ''
        grid = f', grid {self.grid[0]}x{self.grid[1]}' if self.grid and self.kind == 'tokens' else ''
        return f"{self.name}: {self.kind} {tuple(self.shape)}{extra}{grid}"


class Feature:
    """A tapped tensor with the metadata to convert it between layouts.

    ``data`` keeps the layout the model produced, normalised to (B, C, H, W) for maps (NHWC outputs are
    permuted) and (B, N, C) for tokens.
    """

    __slots__ = ('data', 'spec')

    def __init__(self, data, spec):
        self.data = data
        self.spec = spec

    @property
    def kind(self):
        return self.spec.kind

    @property
    def num_prefix(self):
        return self.spec.num_prefix

    def prefix_tokens(self):
        return self.data[:, :self.spec.num_prefix]

    def patch_tokens(self):
        """(B, N, C) without class/distillation/prompt tokens; maps are flattened row-major."""
        if self.kind == 'map':
            return self.data.flatten(2).transpose(1, 2)
        if self.kind == 'tokens':
            return self.data[:, self.spec.num_prefix:]
        raise TypeError(f"tap {self.spec.name!r} is {self.kind}; it has no patch tokens")

    def as_map(self):
        """(B, C, H, W); tokens are laid out on their patch grid after the prefix tokens are removed."""
        if self.kind == 'map':
            return self.data
        if self.kind == 'tokens':
            if self.spec.grid is None:
                raise TypeError(f"tap {self.spec.name!r} has {self.data.shape[1]} tokens that form no "
                                "square grid; it cannot be read as a map")
            tokens = self.patch_tokens()
            b, _, c = tokens.shape
            return tokens.transpose(1, 2).reshape(b, c, *self.spec.grid)
        raise TypeError(f"tap {self.spec.name!r} is {self.kind}; it cannot be read as a map")

    def pooled(self):
        """(B, C): global average of the map or of the patch tokens; vectors are returned as they are."""
        if self.kind == 'vector':
            return self.data
        return self.patch_tokens().mean(1)

    def __repr__(self):
        return f"Feature({self.spec.describe()}, batch {self.data.shape[0]})"


def token_grid(num_tokens, num_prefix, hint=None):
    """The (h, w) patch grid of ``num_tokens`` tokens, or None if they do not form one."""
    patches = num_tokens - num_prefix
    if hint is not None and hint[0] * hint[1] == patches:
        return tuple(hint)
    side = math.isqrt(patches)
    return (side, side) if side * side == patches else None


def space_to_depth_tokens(tokens, grid, factor):
    """(B, h*w, C) tokens → (B, h*w/factor², C*factor²): each factor×factor block becomes one token."""
    b, _, c = tokens.shape
    as_map = tokens.transpose(1, 2).reshape(b, c, *grid)
    return F.pixel_unshuffle(as_map, factor).flatten(2).transpose(1, 2)


def to_map(tokens, grid):
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, *grid)


def to_tokens(feature_map):
    return feature_map.flatten(2).transpose(1, 2)

