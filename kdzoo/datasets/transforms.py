"""Data transforms kdzoo adds to mmengine pipelines.

``MultiViewGenerator``: the multi-view generator of CAKD's multi-view robust training (Liu et al., ACCV 2022;
docs/methods/cakd.md). The paper describes random colour, affine, crop and masking transformations of
the input, seen by teacher and student alike; the official code instead relies on strong standard
augmentation (TrivialAugmentWide, random erasing 0.1, mixup 0.2, repeated augmentation), which is the
recommended default for full-scale CAKD recipes. This transform is the paper-style generator [PROPOSED,
docs/methods/cakd.md]: each of the four views is applied independently with probability ``prob`` (0.5), in the order
colour → affine → crop → patch mask. Ranges (ours): brightness / contrast / saturation factors in
[1 − 0.4, 1 + 0.4]; rotation ±15°, translation ±10 %, scale 0.9–1.1, shear ±10°; a crop of 50–100 % of
the area with aspect ratio 3/4–4/3 resized back; 25 % of an 8×8 grid of patches set to ``mask_value``.

Images are numpy uint8, (H, W) or (H, W, C); the output has the same shape and dtype. Randomness comes from
numpy's global generator, which mmengine seeds per worker.
"""
import math

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from kdzoo.registry import TRANSFORMS


def per_channel(img, fn):
    """Apply ``fn`` (uint8 (H, W) → uint8 (H', W')) to every channel of an (H, W) or (H, W, C) image."""
    if img.ndim == 2:
        return fn(img)
    return np.stack([fn(img[..., c]) for c in range(img.shape[2])], axis=2)


def to_uint8(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def adjust_colour(img, brightness, contrast, saturation):
    """Brightness scale, then blends towards the mean grey level (contrast) and the luma (saturation)."""
    out = img.astype(np.float32) * brightness
    grey = out.mean(axis=2, keepdims=True) if out.ndim == 3 else out
    out = (out - grey.mean()) * contrast + grey.mean()
    if out.ndim == 3 and out.shape[2] == 3:
        luma = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out = (out - luma[..., None]) * saturation + luma[..., None]
    return to_uint8(out)


def affine_coefficients(size, angle, translate, scale, shear):
    """PIL AFFINE data: the output→input map of a rotation/shear/scale about the centre plus a shift."""
    w, h = size
    cx, cy = w / 2, h / 2
    a, s = math.radians(angle), math.radians(shear)
    forward = np.array([[math.cos(a), -math.sin(a + s), 0], [math.sin(a), math.cos(a + s), 0], [0, 0, 1]])
    forward[:2, :2] *= scale
    forward[:2, 2] = [cx + translate[0] - forward[0, 0] * cx - forward[0, 1] * cy,
                      cy + translate[1] - forward[1, 0] * cx - forward[1, 1] * cy]
    return tuple(np.linalg.inv(forward)[:2].ravel())


@TRANSFORMS.register_module()
class MultiViewGenerator(BaseTransform):
    """Random colour / affine / crop / patch-mask views of ``results['img']`` (see the module docstring).

    Args:
        prob: probability of each view.
        colour: max deviation of the brightness, contrast and saturation factors from 1.
        degrees, translate, scale, shear: affine ranges (translate as a fraction of the size).
        crop_area, crop_ratio: area fraction and aspect-ratio range of the crop.
        mask_grid, mask_ratio, mask_value: patch grid side, fraction of patches masked and their value.
    """

    def __init__(self, prob=0.5, colour=0.4, degrees=15.0, translate=0.1, scale=(0.9, 1.1), shear=10.0,
                 crop_area=(0.5, 1.0), crop_ratio=(3 / 4, 4 / 3), mask_grid=8, mask_ratio=0.25, mask_value=0):
        super().__init__()
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"MultiViewGenerator: prob must be in [0, 1], got {prob}")
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"MultiViewGenerator: mask_ratio must be in [0, 1], got {mask_ratio}")
        self.prob, self.colour = prob, colour
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, tuple(scale), shear
        self.crop_area, self.crop_ratio = tuple(crop_area), tuple(crop_ratio)
        self.mask_grid, self.mask_ratio, self.mask_value = mask_grid, mask_ratio, mask_value

    def transform(self, results):
        img = results['img']
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise TypeError(f"MultiViewGenerator expects a uint8 (H, W) or (H, W, C) image, got "
                            f"{img.dtype} {img.shape}")
        for view in (self.colour_view, self.affine_view, self.crop_view, self.mask_view):
            if np.random.rand() < self.prob:
                img = view(img)
        results['img'] = img
        return results

    def colour_view(self, img):
        factors = np.random.uniform(1 - self.colour, 1 + self.colour, size=3)
        return adjust_colour(img, *factors)

    def affine_view(self, img):
        h, w = img.shape[:2]
        shift = np.random.uniform(-self.translate, self.translate, size=2) * (w, h)
        data = affine_coefficients((w, h), np.random.uniform(-self.degrees, self.degrees), shift,
                                   np.random.uniform(*self.scale), np.random.uniform(-self.shear, self.shear))
        return per_channel(img, lambda c: np.asarray(Image.fromarray(c).transform(
            (w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=0)))

    def crop_view(self, img):
        h, w = img.shape[:2]
        area = np.random.uniform(*self.crop_area) * h * w
        ratio = math.exp(np.random.uniform(*np.log(self.crop_ratio)))
        ch = min(h, max(1, round(math.sqrt(area / ratio))))
        cw = min(w, max(1, round(math.sqrt(area * ratio))))
        top, left = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        return per_channel(img[top:top + ch, left:left + cw], lambda c: np.asarray(
            Image.fromarray(c).resize((w, h), Image.Resampling.BILINEAR)))

    def mask_view(self, img):
        h, w = img.shape[:2]
        ph, pw = math.ceil(h / self.mask_grid), math.ceil(w / self.mask_grid)
        cells = self.mask_grid ** 2
        img = img.copy()
        for cell in np.random.choice(cells, round(self.mask_ratio * cells), replace=False):
            row, col = divmod(int(cell), self.mask_grid)
            img[row * ph:(row + 1) * ph, col * pw:(col + 1) * pw] = self.mask_value
        return img

    def __repr__(self):
        return (f"{type(self).__name__}(prob={self.prob}, colour={self.colour}, degrees={self.degrees}, "
                f"translate={self.translate}, scale={self.scale}, shear={self.shear}, "
                f"crop_area={self.crop_area}, crop_ratio={self.crop_ratio}, mask_grid={self.mask_grid}, "
                f"mask_ratio={self.mask_ratio})")
