"""Face-recognition datasets on mmengine's ``BaseDataset``.

Every item handed to the pipeline is a dict with ``img`` (H x W x 3 uint8 RGB numpy array; grey images have their
channel replicated), ``gt_label`` (int), ``ori_shape`` / ``img_shape`` and ``sample_idx``, so
``dict(type='mmpretrain.PackInputs')`` packs it directly. Resizing to 112 x 112 is the pipeline's job, e.g.
``dict(type='FaceResize', size=112)`` (``kdzoo.face.datasets.transforms``).
"""
import hashlib
import logging
import os

import numpy as np
from mmengine.dataset import BaseDataset

from kdzoo.datasets.fingerprint import file_stats
from kdzoo.registry import DATASETS
from .image_codec import ImageDecodeError, decode_image, read_image_file
from .image_folder import IMAGE_EXTENSIONS, scan_identity_folders
from .missing_data import IMAGE_FOLDER_LAYOUT, RECORDIO_LAYOUT, VERIFICATION_BIN_LAYOUT, missing_data_error
from .orl_split import ORL_ROOT, ORL_TEST_SUBJECTS, ORL_TRAIN_SUBJECTS, all_pairs, subject_number
from .recordio import FLOAT32_EXACT_INT_LIMIT, RecordIOCorruptError, RecordIOReader, first_label, read_property
from .verification_bin import load_verification_bin

logger = logging.getLogger(__name__)


def _under(root, path):
    return path if os.path.isabs(path) or not root else os.path.join(root, path)


def _image_item(info, img):
    info.update(img=img, ori_shape=img.shape[:2], img_shape=img.shape[:2])
    return info


@DATASETS.register_module()
class FaceRecordIODataset(BaseDataset):
    """Images and identity labels from an MXNet RecordIO set (``train.rec`` / ``train.idx`` / ``property``).

    Both layouts of docs/face_reference.md §1: insightface (record 0 is a header; images are keys ``1 .. A-1``) and
    plain im2rec (every ``.idx`` key is an image). Records are decoded lazily; ``metainfo['num_classes']`` comes
    from ``property``, else from the header record.

    Args:
        data_root: folder holding the three files.
        rec_file, idx_file, property_file: their names (relative to ``data_root`` unless absolute).
        layout: ``'auto'`` (detect the header record), ``'insightface'`` or ``'im2rec'``.
        on_corrupt: ``'raise'``, or ``'skip'`` to log a warning and draw another sample (training only: in
            ``test_mode`` every index must give its own record, so corrupt records always raise there).

    ``data_list`` holds the image keys as one int64 array rather than one dict per image, because MS1MV2 has
    5.8M images and Glint360K 17M.
    """

    def __init__(self, data_root, rec_file='train.rec', idx_file='train.idx', property_file='property',
                 layout='auto', on_corrupt='raise', pipeline=(), test_mode=False, indices=None,
                 lazy_init=False, max_refetch=1000, metainfo=None):
        self.rec_path = _under(data_root, rec_file)
        self.idx_path = _under(data_root, idx_file)
        self.property_path = _under(data_root, property_file)
        self.layout, self.on_corrupt = layout, on_corrupt
        self.reader = None
        super().__init__(data_root=data_root, metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode,
                         indices=indices, serialize_data=False, lazy_init=lazy_init, max_refetch=max_refetch)

    def load_data_list(self):
        if not (os.path.isfile(self.rec_path) and os.path.isfile(self.idx_path)):
            raise missing_data_error(type(self).__name__, [self.rec_path, self.idx_path, self.property_path],
                                     RECORDIO_LAYOUT)
        self.reader = RecordIOReader(self.rec_path, self.idx_path, on_corrupt=self.on_corrupt)
        keys = self.reader.image_keys(self.layout)
        self._metainfo.update(self._class_metainfo())
        return keys

    def _class_metainfo(self):
        bounds = self.reader.insightface_bounds() if self.layout != 'im2rec' else None
        header_classes = bounds[1] - bounds[0] if bounds else None
        info = dict(num_classes=header_classes)
        if os.path.isfile(self.property_path):
            num_classes, height, width = read_property(self.property_path)
            self._check_class_counts(num_classes, header_classes)
            info.update(num_classes=num_classes, image_size=(height, width))
        if info['num_classes'] is not None and info['num_classes'] > FLOAT32_EXACT_INT_LIMIT:
            raise ValueError(f'{self.rec_path}: {info["num_classes"]} classes, but RecordIO stores labels as '
                             f'float32, exact only up to 2**24 = {FLOAT32_EXACT_INT_LIMIT}; labels would collide')
        return info

    def _check_class_counts(self, property_classes, header_classes):
        if header_classes is None or header_classes == property_classes:
            return
        error = RecordIOCorruptError(self.rec_path, 0, self.reader.offset_of(0),
                                     f'the header record announces {header_classes} identities but '
                                     f'{self.property_path} says {property_classes}')
        if self.on_corrupt == 'raise':
            raise error
        logger.warning('%s; using %d from the property file', error, property_classes)

    def get_data_info(self, idx):
        if not self._fully_initialized:
            self.full_init()
        return dict(rec_key=int(self.data_list[idx]), sample_idx=idx if idx >= 0 else len(self) + idx)

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        sample = self.reader.read_labelled_image(info['rec_key'],
                                                 on_corrupt='raise' if self.test_mode else None)
        if sample is None:  # skipped corrupt record: BaseDataset.__getitem__ draws another index
            return None
        label, img = sample
        info['gt_label'] = int(label)
        return self.pipeline(_image_item(info, img))

    def fingerprint(self):
        """The three files' sizes and modification times and the image keys in index order (the teacher cache's
        manifest; labels live in the ``.rec`` file, so hashing every record's metadata would mean reading it)."""
        if not self._fully_initialized:
            self.full_init()
        keys = np.ascontiguousarray(np.asarray(self.data_list, dtype=np.int64))
        return dict(files=file_stats(dict(rec=self.rec_path, idx=self.idx_path, property=self.property_path)),
                    keys_sha256=hashlib.sha256(keys.tobytes()).hexdigest())

    def get_cat_ids(self, idx):
        key = self.get_data_info(idx)['rec_key']  # first: it runs full_init, which opens the reader
        header, _ = self.reader.read_header(key)
        return [int(first_label(header))]


class _ImageFileDataset(BaseDataset):
    """Items are ``{'img_path', 'gt_label'}``; the image is read and decoded when the item is prepared."""

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        return self.pipeline(_image_item(info, read_image_file(info['img_path'])))

    def get_cat_ids(self, idx):
        return [int(self.get_data_info(idx)['gt_label'])]


@DATASETS.register_module()
class FaceImageFolder(_ImageFileDataset):
    """An ImageFolder-style face set: one sub-folder per identity; class index = sorted position of its folder.

    ``metainfo``: ``classes`` (folder names) and ``num_classes``.
    """

    def __init__(self, data_root, extensions=IMAGE_EXTENSIONS, pipeline=(), test_mode=False, indices=None,
                 lazy_init=False, max_refetch=1000, metainfo=None):
        self.extensions = tuple(ext.lower() for ext in extensions)
        super().__init__(data_root=data_root, metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode,
                         indices=indices, lazy_init=lazy_init, max_refetch=max_refetch)

    def _scan(self):
        return scan_identity_folders(self.data_root, self.extensions)

    def load_data_list(self):
        if not os.path.isdir(self.data_root):
            raise missing_data_error(type(self).__name__, [self.data_root], IMAGE_FOLDER_LAYOUT)
        identities = self._scan()
        if not any(paths for _, paths in identities):
            raise missing_data_error(type(self).__name__, [os.path.join(self.data_root, '<identity>', '*' + ext)
                                                           for ext in self.extensions], IMAGE_FOLDER_LAYOUT)
        classes = tuple(name for name, _ in identities)
        self._metainfo.update(classes=classes, num_classes=len(classes))
        return [dict(img_path=path, gt_label=label) for label, (_, paths) in enumerate(identities) for path in paths]


@DATASETS.register_module()
class ORLFaces(FaceImageFolder):
    """The embedded ORL faces (AT&T "Database of Faces", Olivetti Research Laboratory) with kdzoo's fixed split.

    ``split='train'``: the 28 subjects of ``ORL_TRAIN_SUBJECTS`` (280 images, labels 0..27).
    ``split='test'``: the 10 held-out subjects of ``ORL_TEST_SUBJECTS`` (100 images, labels 0..9) and, in
    ``metainfo``, ``pairs`` (int64 (4950, 2) dataset indices, every ``i < j``) and ``issame`` (450 genuine,
    4,500 impostor). Images are 92 x 112 (W x H) grey, returned as 3-channel RGB; add ``FaceResize`` to the
    pipeline for 112 x 112 models. When using these images, please give credit to Olivetti Research Laboratory.
    """

    SPLITS = {'train': ORL_TRAIN_SUBJECTS, 'test': ORL_TEST_SUBJECTS}

    def __init__(self, split='train', data_root=None, pipeline=(), test_mode=None, indices=None,
                 lazy_init=False, max_refetch=1000, metainfo=None):
        if split not in self.SPLITS:
            raise ValueError(f'ORLFaces split must be one of {sorted(self.SPLITS)}, got {split!r}')
        self.split = split
        super().__init__(data_root=data_root or ORL_ROOT, extensions=('.pgm',), pipeline=pipeline,
                         test_mode=(split == 'test') if test_mode is None else test_mode, indices=indices,
                         lazy_init=lazy_init, max_refetch=max_refetch, metainfo=metainfo)

    def _scan(self):
        return scan_identity_folders(self.data_root, self.extensions, identities=self.SPLITS[self.split],
                                     sort_key=subject_number)

    def load_data_list(self):
        missing = [os.path.join(self.data_root, name) for name in self.SPLITS[self.split]
                   if not os.path.isdir(os.path.join(self.data_root, name))]
        if missing:
            raise missing_data_error(type(self).__name__, missing, IMAGE_FOLDER_LAYOUT)
        data_list = super().load_data_list()
        self._metainfo['split'] = self.split
        if self.split == 'test':
            pairs, issame = all_pairs([item['gt_label'] for item in data_list])
            self._metainfo.update(pairs=pairs, issame=issame)
        return data_list


@DATASETS.register_module()
class FaceVerificationBin(BaseDataset):
    """The images of an insightface verification ``.bin`` (lfw.bin, cfp_fp.bin, ...), in file order.

    Item ``i`` is image ``i``; pair ``k`` is images ``2k`` and ``2k + 1``. Verification sets have no identity
    labels, so ``gt_label`` (and ``img_index``) hold the image's index in the file, which survives ``indices``
    sub-setting. ``metainfo``: ``issame`` (bool (N,)), ``num_pairs`` and ``name`` (file name without ``.bin``).
    """

    def __init__(self, path, data_root='', pipeline=(), test_mode=True, indices=None, lazy_init=False,
                 metainfo=None):
        self.path = _under(data_root, path)
        self._image_bytes = self._image_offsets = None
        super().__init__(data_root=data_root, metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode,
                         indices=indices, lazy_init=lazy_init)

    def load_data_list(self):
        if not os.path.isfile(self.path):
            raise missing_data_error(type(self).__name__, [self.path], VERIFICATION_BIN_LAYOUT)
        verification = load_verification_bin(self.path)
        # One contiguous buffer instead of 12,000 bytes objects: workers then share it without copy-on-access.
        self._image_offsets = np.cumsum([0] + [len(image) for image in verification.images]).astype(np.int64)
        self._image_bytes = np.frombuffer(b''.join(verification.images), dtype=np.uint8)
        name = os.path.splitext(os.path.basename(self.path))[0]
        self._metainfo.update(issame=verification.issame, num_pairs=len(verification.issame), name=name)
        return [dict(img_index=index, gt_label=index) for index in range(len(verification.images))]

    def fingerprint(self):
        """The ``.bin`` file's size and modification time, and the image indices in index order."""
        if not self._fully_initialized:
            self.full_init()
        indices = np.asarray([self.get_data_info(i)['img_index'] for i in range(len(self))], dtype=np.int64)
        return dict(files=file_stats(dict(bin=self.path)), indices_sha256=hashlib.sha256(indices.tobytes()).hexdigest())

    def image_bytes(self, img_index):
        start, end = self._image_offsets[img_index], self._image_offsets[img_index + 1]
        return self._image_bytes[start:end]

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        try:
            img = decode_image(self.image_bytes(info['img_index']))
        except ImageDecodeError as error:
            raise ImageDecodeError(f'{self.path}: image {info["img_index"]}: {error}') from None
        return self.pipeline(_image_item(info, img))
