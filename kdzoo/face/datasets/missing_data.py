"""The error a face dataset raises when its files are not where the config says.

It names every path that was looked for, shows the expected layout (docs/face_reference.md §1-2) and points at
the ORL quick start, which runs offline on the embedded ORL faces.
"""
import os

RECORDIO_LAYOUT = """\
  <data_root>/
    train.rec     MXNet RecordIO images (insightface layout: record 0 = header [A, B])
    train.idx     one "key<TAB>byte_offset" line per record
    property      "num_classes,112,112" (optional for the plain im2rec layout)
  e.g. MS1MV2 (faces_emore), MS1MV3, Glint360K as distributed by insightface; or build one from an image
  folder with: python tools/face2rec.py --help"""

IMAGE_FOLDER_LAYOUT = """\
  <data_root>/
    <identity_1>/  aligned 112x112 images (.jpg, .png, ...)
    <identity_2>/
    ...            one sub-folder per identity; class index = position in the sorted folder names"""

VERIFICATION_BIN_LAYOUT = """\
  <path>.bin      insightface verification set: a pickle of (2N encoded images, N issame booleans),
                  e.g. lfw.bin, cfp_fp.bin, agedb_30.bin from the faces_emore download; or build one with
                  python tools/face2rec.py --root <image folder> --pairs-bin <out.bin> --num-pairs N"""

ORL_QUICK_START = ('No download needed to try face recognition: the ORL faces ship with kdzoo '
                   '(kdzoo/data/orl_faces), see configs/face/orl_*.py for the quick start.')


def missing_data_error(dataset, looked_for, layout):
    """A FileNotFoundError for ``dataset`` listing ``looked_for`` (marking which exist) and the ``layout``."""
    lines = [f'{dataset}: data not found. Looked for:']
    for path in looked_for:
        lines.append(f"  {'found  ' if os.path.exists(path) else 'MISSING'} {path}")
    lines += ['Expected layout (docs/face_reference.md §1):', layout, ORL_QUICK_START]
    return FileNotFoundError('\n'.join(lines))
