"""Face-recognition data: MXNet RecordIO, ImageFolder, verification .bin, IJB images and metadata, the embedded ORL
set and 5-point alignment.

Formats and conventions: docs/face_reference.md §1-4. Importing this package registers ``FaceRecordIODataset``,
``FaceImageFolder``, ``FaceVerificationBin``, ``IJBDataset`` and ``ORLFaces`` in ``kdzoo.registry.DATASETS`` and
``FaceResize`` and ``ViewFlip`` in ``kdzoo.registry.TRANSFORMS``.
"""
from .alignment import align_face, arcface_template, estimate_similarity
from .datasets import FaceImageFolder, FaceRecordIODataset, FaceVerificationBin, ORLFaces
from .ijb import (ijb_meta_paths, read_landmarks_and_scores, read_template_media_list,
                  read_template_pair_list)
from .ijb_dataset import IJBDataset
from .image_codec import ImageDecodeError, decode_image, encode_image, read_image_file
from .image_folder import IMAGE_EXTENSIONS, scan_identity_folders
from .orl_split import ORL_ROOT, ORL_TEST_SUBJECTS, ORL_TRAIN_SUBJECTS, all_pairs, orl_subject_split
from .recordio import (IRHeader, RecordIOCorruptError, RecordIOReader, RecordIOWriter, pack_record, read_property,
                       unpack_record, write_insightface_recordio, write_property)
from .transforms import FaceResize, ViewFlip
from .verification_bin import (SafeUnpickler, UnsafePickleError, VerificationSet, load_verification_bin,
                               loads_verification_bin, write_verification_bin)

__all__ = [
    'FaceImageFolder', 'FaceRecordIODataset', 'FaceVerificationBin', 'ORLFaces', 'IJBDataset', 'FaceResize', 'ViewFlip',
    'RecordIOReader', 'RecordIOWriter', 'RecordIOCorruptError', 'IRHeader', 'pack_record', 'unpack_record',
    'write_insightface_recordio', 'read_property', 'write_property',
    'load_verification_bin', 'loads_verification_bin', 'write_verification_bin', 'SafeUnpickler',
    'UnsafePickleError', 'VerificationSet',
    'align_face', 'arcface_template', 'estimate_similarity',
    'ijb_meta_paths', 'read_template_media_list', 'read_template_pair_list', 'read_landmarks_and_scores',
    'decode_image', 'encode_image', 'read_image_file', 'ImageDecodeError', 'IMAGE_EXTENSIONS',
    'scan_identity_folders', 'ORL_ROOT', 'ORL_TRAIN_SUBJECTS', 'ORL_TEST_SUBJECTS', 'orl_subject_split', 'all_pairs',
]
