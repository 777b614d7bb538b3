"""CIFAR-100 (python release) that fails at once, and clearly, when its files are not where the config says.

mmpretrain's ``CIFAR100`` downloads the archive when the folder is missing (``download=True`` is its
default): on a machine without network access that ends in a network error after a long wait, and with
``download=False`` its error names the folder but neither the files looked for nor the config key to change.
This subclass is registered as ``CIFAR100`` in kdzoo's DATASETS, so configs in the ``kdzoo`` scope
(``type='CIFAR100'``) get it. It does not download unless ``download=True``; before loading it checks
``<data_root>/cifar-100-python/{train,test,meta}`` and raises ``FileNotFoundError`` naming the folder, each
file (found / MISSING) and the config keys that set the folder. Loading itself is mmpretrain's (images
32×32×3 uint8 RGB, ``gt_label`` 0..99); the paper configs upsample them to 224 in the pipeline.
"""
import os.path as osp

from mmpretrain.datasets import CIFAR100 as MMPretrainCIFAR100

from kdzoo.registry import DATASETS

ARCHIVE_URL = 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'
SPLIT_CONFIG_KEYS = {
    'train': ('train_dataloader.dataset.data_root',),
    'test': ('val_dataloader.dataset.data_root', 'test_dataloader.dataset.data_root'),
}


def is_local(path):
    return '://' not in str(path)


def missing_cifar_error(dataset, split, data_root, folder, files):
    keys = SPLIT_CONFIG_KEYS[split]
    lines = [f"{dataset} (split {split!r}): data not found under data_root={data_root!r}. Looked for:"]
    lines += [f"  {'found  ' if osp.isfile(path) else 'MISSING'} {path}" for path in files]
    lines += [f"Expected layout: {folder}/{{train,test,meta}} (the python release, {ARCHIVE_URL}, "
              f"extracted into {data_root!r}).",
              f"The folder is set by the config key {' / '.join(keys)}; point every split at your copy, e.g. "
              "--cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR "
              "test_dataloader.dataset.data_root=DIR (or set download=True on the dataset to fetch it)."]
    return FileNotFoundError('\n'.join(lines))


@DATASETS.register_module(name='CIFAR100')
class CIFAR100(MMPretrainCIFAR100):
    """mmpretrain's CIFAR100 with ``download=False`` by default and a clear error for missing files.

    Args:
        data_root: folder that holds ``cifar-100-python/`` (e.g. ``'data/cifar100'``).
        split: ``'train'`` (50,000 images) or ``'test'`` (10,000 images).
        download: fetch and extract the archive into ``data_root`` when it is missing (needs network).
        **kwargs: mmpretrain ``CIFAR100`` / ``BaseDataset`` arguments (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, data_root='', split='train', download=False, **kwargs):
        self._given_root = data_root
        super().__init__(data_root=data_root, split=split, download=download, **kwargs)

    def expected_files(self):
        folder = osp.join(self.data_prefix['root'], self.base_folder)
        names = [name for name, _ in self.train_list + self.test_list] + [self.meta['filename']]
        return folder, [osp.join(folder, name) for name in names]

    def load_data_list(self):
        root = self.data_prefix['root']
        if not self.download and is_local(root):
            folder, files = self.expected_files()
            if not all(osp.isfile(path) for path in files):
                raise missing_cifar_error(type(self).__name__, self.split, self._given_root or root, folder,
                                          files)
        return super().load_data_list()
