"""``FaceResize``: bring face images of another size (ORL is 92 x 112) to the 112 x 112 that face models expect.

Aligned 112 x 112 sets (MS1MV2, the verification .bin files) need no resizing. For others, three modes:

* ``'pad'`` (default): scale to fit inside the target keeping the aspect ratio, then pad the borders with
  ``pad_value``; ORL 92 x 112 gets 10 black columns each side, no resampling at all.
* ``'crop'``: scale to cover the target keeping the aspect ratio, then crop the centre.
* ``'stretch'``: resize to the target, changing the aspect ratio.

mmpretrain's ``Resize`` / ``CenterCrop`` also work on these numpy images if a different recipe is wanted.
"""
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from kdzoo.datasets.replay import current_view
from kdzoo.registry import TRANSFORMS

FACE_RESIZE_MODES = ('pad', 'crop', 'stretch')


@TRANSFORMS.register_module()
class FaceResize(BaseTransform):
    """Resize ``results['img']`` (H x W x C) to ``size`` (int, or (height, width)); see the module docstring.

    Updates ``img``, ``img_shape`` and ``scale_factor`` (``(w_scale, h_scale)``, as mmcv's ``Resize`` sets it).
    """

    def __init__(self, size=112, mode='pad', pad_value=0, interpolation='bilinear'):
        if mode not in FACE_RESIZE_MODES:
            raise ValueError(f'FaceResize mode must be one of {FACE_RESIZE_MODES}, got {mode!r}')
        self.height, self.width = (size, size) if isinstance(size, int) else tuple(size)
        self.mode, self.pad_value, self.interpolation = mode, pad_value, interpolation

    def transform(self, results):
        img = results['img']
        height, width = img.shape[:2]
        if self.mode == 'stretch':
            scale_w, scale_h = self.width / width, self.height / height
        else:
            fit = min if self.mode == 'pad' else max
            scale_w = scale_h = fit(self.width / width, self.height / height)
        new_size = (max(1, round(width * scale_w)), max(1, round(height * scale_h)))
        if new_size != (width, height):
            img = mmcv.imresize(img, new_size, interpolation=self.interpolation)
        img = self._pad(img) if self.mode == 'pad' else self._centre_crop(img)
        results.update(img=img, img_shape=img.shape[:2], scale_factor=(scale_w, scale_h))
        return results

    def _pad(self, img):
        top = (self.height - img.shape[0]) // 2
        left = (self.width - img.shape[1]) // 2
        canvas = np.full((self.height, self.width) + img.shape[2:], self.pad_value, dtype=img.dtype)
        canvas[top:top + img.shape[0], left:left + img.shape[1]] = img
        return canvas

    def _centre_crop(self, img):
        top = (img.shape[0] - self.height) // 2
        left = (img.shape[1] - self.width) // 2
        return np.ascontiguousarray(img[top:top + self.height, left:left + self.width])

    def __repr__(self):
        return (f'{type(self).__name__}(size=({self.height}, {self.width}), mode={self.mode!r}, '
                f'pad_value={self.pad_value}, interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class ViewFlip(BaseTransform):
    """A horizontal flip that is a random flip in training and an exact view under a teacher cache.

    Outside a :class:`~kdzoo.datasets.ReplayDataset` it flips with probability ``prob`` (like mmpretrain's
    ``RandomFlip``). Under one it flips exactly when the view drawn is odd, so with ``views=2`` view 0 is the
    face and view 1 its mirror image: the two distinct views of the flip-only face recipe, each cached once
    (docs/teacher_cache.md). Epoch e shows view e mod 2, so each face alternates between the two.
    """

    def __init__(self, prob=0.5):
        self.prob = prob

    def transform(self, results):
        view = current_view()
        flip = view % 2 == 1 if view is not None else np.random.rand() < self.prob
        if flip:
            results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        results['flip'] = bool(flip)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(prob={self.prob})'
