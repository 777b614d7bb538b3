"""ImageNet-1K (mmpretrain's layout) that names the folder it looked for and the config key that sets it.

mmpretrain's ``ImageNet`` error for a missing folder names the path but not the config key; configs in the
``kdzoo`` scope (``type='ImageNet'``) get this subclass, which checks ``<data_root>/<split>`` before loading.
"""
import os.path as osp

from mmpretrain.datasets import ImageNet as MMPretrainImageNet

from kdzoo.registry import DATASETS
from .cifar import is_local

SPLIT_CONFIG_KEYS = {'train': 'train_dataloader.dataset.data_root',
                     'val': 'val_dataloader.dataset.data_root / test_dataloader.dataset.data_root'}


@DATASETS.register_module(name='ImageNet')
class ImageNet(MMPretrainImageNet):
    """mmpretrain's ImageNet; a missing ``<data_root>/<split>`` folder fails at once with the fix."""

    def __init__(self, data_root='', split='', **kwargs):
        folder = osp.join(data_root, split) if split else data_root
        if is_local(folder) and not osp.isdir(folder):
            key = SPLIT_CONFIG_KEYS.get(split, 'the dataset data_root')
            raise FileNotFoundError(
                f"ImageNet (split {split!r}): folder {folder!r} not found. Expected layout: "
                f"<data_root>/train/<wnid>/*.JPEG and <data_root>/val/<wnid>/*.JPEG (or val/ with "
                f"meta/val.txt). The folder is set by the config key {key}, e.g. --cfg-options "
                "train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR "
                "test_dataloader.dataset.data_root=DIR")
        super().__init__(data_root=data_root, split=split, **kwargs)
