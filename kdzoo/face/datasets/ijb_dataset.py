"""``IJBDataset``: the IJB-B / IJB-C images of the 1:1 template verification (docs/face_reference.md §3).

Item ``i`` is row ``i`` of ``meta/<p>_face_tid_mid.txt``: its ``loose_crop`` image, decoded as RGB like every
kdzoo face dataset, aligned to ``image_size`` x ``image_size`` with its five landmarks from
``meta/<p>_name_5pts_score.txt`` (``kdzoo.face.datasets.alignment``). Images are read and aligned when an item
is asked for, never in ``__init__`` (IJB-C lists 469,375 images).

``metainfo`` holds what ``IJBMetric`` needs, in image-list order: ``templates``, ``medias`` and
``detector_scores`` (one per image), ``p1``, ``p2`` and ``labels`` (one per template pair), plus ``name``
(``'IJBB'`` / ``'IJBC'``) and ``num_pairs``.
"""
import os

import numpy as np
from mmengine.dataset import BaseDataset

from kdzoo.registry import DATASETS
from .alignment import align_face, arcface_template
from .ijb import (IJB_TARGETS, LandmarkScores, ijb_meta_paths, read_landmarks_and_scores, read_template_media_list,
                  read_template_pair_list)
from .image_codec import read_image_file


@DATASETS.register_module()
class IJBDataset(BaseDataset):
    """The images of an insightface IJB release, aligned on the fly; pairs and templates in ``metainfo``.

    Args:
        data_root: the release folder of one target, e.g. ``IJB_release/IJBC`` (holding ``loose_crop/`` and
            ``meta/``); a missing file is an error listing every path looked for and the layout.
        target: ``'IJBB'`` or ``'IJBC'`` (picks the ``ijbb_`` / ``ijbc_`` meta files).
        image_size: side of the aligned faces, a multiple of 112.

    Like ``FaceVerificationBin``, items carry ``img_index`` and ``gt_label`` = the image's row in the list (IJB
    images have no identity labels here), and ``sample_idx``, by which the metric orders the embeddings.
    """

    def __init__(self, data_root, target='IJBC', pipeline=(), image_size=112, test_mode=True, lazy_init=False,
                 metainfo=None):
        if str(target).upper() not in IJB_TARGETS:
            raise ValueError(f'IJBDataset target must be one of {IJB_TARGETS}, got {target!r}')
        arcface_template(image_size)  # rejects a size the template does not scale to, before any file is read
        self.target, self.image_size = str(target).upper(), image_size
        self.image_dir, self.landmarks = None, None
        # data_list is the array of image names (not one dict per image), hence no serialisation.
        super().__init__(data_root=data_root, metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode,
                         serialize_data=False, lazy_init=lazy_init)

    def load_data_list(self):
        paths = ijb_meta_paths(self.data_root, self.target)
        media = read_template_media_list(paths.template_media)
        pairs = read_template_pair_list(paths.template_pairs)
        landmark_scores = in_image_order(read_landmarks_and_scores(paths.landmark_scores), media.image_names,
                                         paths.landmark_scores)
        self.image_dir, self.landmarks = paths.image_dir, landmark_scores.landmarks
        self._metainfo.update(
            name=self.target, num_pairs=len(pairs.labels),
            templates=compact_ints(media.templates), medias=compact_ints(media.medias),
            detector_scores=landmark_scores.scores,
            p1=compact_ints(pairs.template1), p2=compact_ints(pairs.template2),
            labels=pairs.labels.astype(np.int8))
        return media.image_names

    def get_data_info(self, idx):
        if not self._fully_initialized:
            self.full_init()
        idx = idx if idx >= 0 else len(self) + idx
        return dict(img_path=os.path.join(self.image_dir, str(self.data_list[idx])), img_index=idx, gt_label=idx,
                    sample_idx=idx)

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        loose_crop = read_image_file(info['img_path'])
        face = align_face(loose_crop, self.landmarks[info['img_index']], self.image_size)
        info.update(img=face, ori_shape=loose_crop.shape[:2], img_shape=face.shape[:2])
        return self.pipeline(info)


def in_image_order(landmark_scores, image_names, source):
    """The landmark rows reordered to follow ``image_names`` (insightface's two lists share one order, so this is
    normally the identity); an image without landmarks is an error naming ``source``."""
    if np.array_equal(landmark_scores.image_names, image_names):
        return landmark_scores
    row_of_name = {name: row for row, name in enumerate(landmark_scores.image_names.tolist())}
    missing = [name for name in image_names.tolist() if name not in row_of_name]
    if missing:
        raise ValueError(f'{source}: no landmarks for {len(missing)} images of the template list, e.g. {missing[:5]}')
    rows = np.array([row_of_name[name] for name in image_names.tolist()], dtype=np.int64)
    return LandmarkScores(landmark_scores.image_names[rows], landmark_scores.landmarks[rows],
                          landmark_scores.scores[rows])


def compact_ints(ids):
    """int64 ids as int32 when they fit: IJB-C has 15.7M pairs, and mmengine deep-copies ``metainfo`` for the
    evaluator and the visualiser."""
    if ids.size == 0 or (ids.min() >= np.iinfo(np.int32).min and ids.max() <= np.iinfo(np.int32).max):
        return ids.astype(np.int32)
    return ids
