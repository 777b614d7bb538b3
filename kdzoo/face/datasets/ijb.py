"""IJB-B / IJB-C 1:1 verification metadata, as insightface distributes it (docs/face_reference.md §3).

Files under ``<root>/meta/`` (``<p>`` is ``ijbb`` or ``ijbc``), all space-separated text without header:

* ``<p>_face_tid_mid.txt``: ``image_name template_id media_id``
* ``<p>_template_pair_label.txt``: ``template_1 template_2 label`` (15,658,489 lines for IJB-C)
* ``<p>_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 detector_score``

Images live in ``<root>/loose_crop/``. These readers return numpy arrays in file order, like arcface_torch's
``eval_ijbc.py``.
"""
import os
from collections import namedtuple

import numpy as np

from .int_table import read_int_table
from .missing_data import missing_data_error

IJB_TARGETS = ('IJBB', 'IJBC')
IJB_LAYOUT = """\
  <root>/                    e.g. IJB_release/IJBC
    loose_crop/              the face crops
    meta/<p>_face_tid_mid.txt, meta/<p>_template_pair_label.txt, meta/<p>_name_5pts_score.txt
                             with <p> = ijbb or ijbc"""

TemplateMedia = namedtuple('TemplateMedia', ['image_names', 'templates', 'medias'])
TemplatePairs = namedtuple('TemplatePairs', ['template1', 'template2', 'labels'])
LandmarkScores = namedtuple('LandmarkScores', ['image_names', 'landmarks', 'scores'])
IJBMetaPaths = namedtuple('IJBMetaPaths', ['image_dir', 'template_media', 'template_pairs', 'landmark_scores'])


def ijb_meta_paths(root, target='IJBC'):
    """The four paths of an IJB release; FileNotFoundError (listing them all) when one is missing."""
    if target.upper() not in IJB_TARGETS:
        raise ValueError(f'target must be one of {IJB_TARGETS}, got {target!r}')
    prefix = target.lower()
    paths = IJBMetaPaths(os.path.join(root, 'loose_crop'),
                         os.path.join(root, 'meta', f'{prefix}_face_tid_mid.txt'),
                         os.path.join(root, 'meta', f'{prefix}_template_pair_label.txt'),
                         os.path.join(root, 'meta', f'{prefix}_name_5pts_score.txt'))
    if not all(os.path.exists(path) for path in paths):
        raise missing_data_error(f'{target.upper()} metadata', list(paths), IJB_LAYOUT)
    return paths


def _split_lines(path, num_columns):
    with open(path) as handle:
        rows = [line.split() for line in handle if line.strip()]
    for line_number, row in enumerate(rows, start=1):
        if len(row) != num_columns:
            raise ValueError(f'{path}: line {line_number} has {len(row)} fields, expected {num_columns}')
    return rows


def read_template_media_list(path):
    """``TemplateMedia(image_names str (N,), templates int64 (N,), medias int64 (N,))``."""
    rows = _split_lines(path, 3)
    names = np.array([row[0] for row in rows], dtype=str)
    numbers = np.array([row[1:] for row in rows], dtype=np.int64).reshape(-1, 2)
    return TemplateMedia(names, numbers[:, 0], numbers[:, 1])


def read_template_pair_list(path):
    """``TemplatePairs(template1, template2, labels)``, int64 arrays; parsed by numpy's C reader (15M lines)."""
    table = read_int_table(path, ('template_1', 'template_2', 'label'))
    return TemplatePairs(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())


def read_landmarks_and_scores(path):
    """``LandmarkScores(image_names str (N,), landmarks float32 (N, 5, 2), scores float32 (N,))``."""
    rows = _split_lines(path, 12)
    names = np.array([row[0] for row in rows], dtype=str)
    values = np.array([row[1:] for row in rows], dtype=np.float32).reshape(-1, 11)
    return LandmarkScores(names, values[:, :10].reshape(-1, 5, 2), values[:, 10].copy())
