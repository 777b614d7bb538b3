"""A classification image folder: ``<data_root>/<split>/<class>/*.jpg`` (docs/own_data.md).

mmpretrain's ``CustomDataset`` numbers the class folders of each split on its own, so a validation folder that
lacks one class silently shifts every later label by one. ``ImageFolder`` takes the class list (and so the label
of each class) from one split, ``class_split`` (the training folder by default), for every split, and checks
before loading that the folders exist, that no split has a class the training folder lacks and that the number
of classes equals the config's ``num_classes``.
"""
import os.path as osp

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import find_folders, get_samples

from kdzoo.registry import DATASETS

LAYOUT = '<data_root>/train/<class>/*.jpg and <data_root>/val/<class>/*.jpg (one sub-folder per class)'
FIX = ('set --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR '
       'test_dataloader.dataset.data_root=DIR (for configs/own_data: the environment variable OWN_DATA_ROOT=DIR)')


@DATASETS.register_module()
class ImageFolder(CustomDataset):
    """Images in one sub-folder per class; labels are the indices of the classes of ``class_split`` in sorted
    order, whatever the split.

    Args:
        data_root: the folder holding the splits.
        split: the sub-folder of this dataset (``'train'``, ``'val'``, ...).
        num_classes: when given, the number of class folders of ``class_split`` must equal it.
        class_split: the sub-folder whose class folders define the classes (default ``'train'``).
        **kwargs: passed to mmpretrain's ``CustomDataset`` (``pipeline``, ``extensions``, ...).
    """

    def __init__(self, data_root, split, num_classes=None, class_split='train', **kwargs):
        self.classes_by_folder = class_index(data_root, class_split, num_classes)
        check_folder(data_root, split)
        metainfo = dict(kwargs.pop('metainfo', None) or {}, classes=tuple(self.classes_by_folder))
        super().__init__(data_root=data_root, data_prefix=split, metainfo=metainfo, **kwargs)

    def _find_samples(self):
        present = find_folders(self.img_prefix)[0]
        unknown = sorted(set(present) - set(self.classes_by_folder))
        if unknown:
            raise ValueError(f"{self.img_prefix}: class folder(s) {unknown} are not in the training classes "
                             f"{list(self.classes_by_folder)}; every split must use the training folder's class "
                             "names (rename or remove these folders)")
        folder_to_idx = {name: self.classes_by_folder[name] for name in present}
        samples, empty = get_samples(self.img_prefix, folder_to_idx, is_valid_file=self.is_valid_file)
        if not samples:
            raise FileNotFoundError(f"{self.img_prefix}: no images ({', '.join(self.extensions)}) in its class "
                                    f"folders. Expected layout: {LAYOUT}")
        return samples


def check_folder(data_root, split):
    folder = osp.join(data_root, split)
    if not osp.isdir(folder):
        raise FileNotFoundError(f"image folder {folder!r} not found. Expected layout: {LAYOUT}. To point at "
                                f"your data, {FIX}")
    return folder


def class_index(data_root, class_split, num_classes=None):
    """``{class folder name: label}`` of ``<data_root>/<class_split>``, checked against ``num_classes``."""
    classes = find_folders(check_folder(data_root, class_split))[0]
    if not classes:
        raise FileNotFoundError(f"{osp.join(data_root, class_split)}: no class sub-folders. Expected layout: "
                                f"{LAYOUT}")
    if num_classes is not None and int(num_classes) != len(classes):
        raise ValueError(f"num_classes is {num_classes} but {osp.join(data_root, class_split)} has "
                         f"{len(classes)} class folders ({', '.join(classes[:10])}"
                         f"{', ...' if len(classes) > 10 else ''}); set num_classes={len(classes)} in the config (for "
                         f"configs/own_data: the environment variable OWN_NUM_CLASSES={len(classes)})")
    return {name: label for label, name in enumerate(classes)}
