"""5-point face alignment onto the arcface template (docs/face_reference.md §4).

The least-squares similarity (rotation, uniform scale, translation) that takes the five detected landmarks
(left eye, right eye, nose tip, left and right mouth corners, in (x, y) pixels) onto the template, then an
affine warp to ``image_size`` x ``image_size`` with a zero border: what insightface does with skimage's
``SimilarityTransform.estimate`` and ``cv2.warpAffine`` before embedding IJB faces.
"""
import cv2
import numpy as np

# ArcFace 5-point template in 112×112 pixels, (x, y) (docs/face_reference.md §4).
ARCFACE_TEMPLATE_112 = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                        (41.5493, 92.3655), (70.7299, 92.2041))


def arcface_template(image_size=112):
    """The (5, 2) template in pixels of an ``image_size`` face; sizes other than 112 scale it (224 doubles it)."""
    if image_size <= 0 or image_size % 112:
        raise ValueError(f'image_size must be a multiple of 112 (the template is defined on 112x112 faces), '
                         f'got {image_size}')
    return np.asarray(ARCFACE_TEMPLATE_112, dtype=np.float64) * (image_size / 112)


def estimate_similarity(src, dst):
    """The 2x3 matrix of the similarity that maps the points ``src`` (N, 2) onto ``dst`` (N, 2) best in the least
    squares sense (Umeyama's estimate; no reflection).

    With points as complex numbers a similarity is ``z -> a * z + b``, and the least-squares ``a`` is the
    closed form below: the same solution as Umeyama's SVD for two dimensions.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f'expected two (N, 2) point sets with N >= 2, got shapes {src.shape} and {dst.shape}')
    src_z, dst_z = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    src_centred, dst_centred = src_z - src_z.mean(), dst_z - dst_z.mean()
    spread = np.vdot(src_centred, src_centred).real
    if spread <= 1e-12:
        raise ValueError(f'the source points coincide, no similarity maps them: {src.tolist()}')
    a = np.vdot(src_centred, dst_centred) / spread
    b = dst_z.mean() - a * src_z.mean()
    return np.array([[a.real, -a.imag, b.real],
                     [a.imag, a.real, b.imag]])


def align_face(img, landmarks, image_size=112):
    """Warp ``img`` (H, W[, C]) so that its five ``landmarks`` (5, 2) land on the arcface template.

    Returns an ``image_size`` x ``image_size`` image of the same dtype and channel order (bilinear, zero
    border).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f'expected 5 (x, y) landmarks, got an array of shape {landmarks.shape}')
    matrix = estimate_similarity(landmarks, arcface_template(image_size))
    return cv2.warpAffine(img, matrix, (image_size, image_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
