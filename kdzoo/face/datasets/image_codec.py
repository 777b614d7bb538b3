"""Encode and decode face images as RGB ``uint8`` arrays of shape (H, W, 3).

OpenCV is used when it imports (``mmcv-lite`` depends on ``opencv-python``), otherwise Pillow. Grey images
(ORL's PGM files, grey JPEGs) come back with their channel replicated three times, so every consumer sees the
same (H, W, 3) RGB layout that insightface's loaders produce.
"""
import io

import numpy as np

try:
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is missing
    cv2 = None


class ImageDecodeError(ValueError):
    """The bytes are not an image that OpenCV / Pillow can decode."""


def decode_image(data):
    """Decode encoded image bytes (JPEG, PNG, PGM, ...) into an RGB uint8 array (H, W, 3)."""
    buffer = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError('empty image payload')
    if cv2 is not None:
        return _decode_with_opencv(buffer)
    return _decode_with_pillow(buffer.tobytes())


def _decode_with_opencv(buffer):
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f'OpenCV could not decode {buffer.size} bytes (starting {buffer[:8].tobytes()!r})')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)   # a new contiguous array, far faster than bgr[:, :, ::-1]


def _decode_with_pillow(data):
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ImageDecodeError(f'Pillow could not decode {len(data)} bytes (starting {data[:8]!r}): {error}') from None


def read_image_file(path):
    """Read and decode the image file at ``path`` into an RGB uint8 array (H, W, 3)."""
    with open(path, 'rb') as handle:
        data = handle.read()
    try:
        return decode_image(data)
    except ImageDecodeError as error:
        raise ImageDecodeError(f'{path}: {error}') from None


def encode_image(rgb, ext='.jpg', quality=95):
    """Encode an RGB (H, W, 3) or grey (H, W) uint8 array as ``ext`` ('.jpg', '.png', ...) and return the bytes."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    ext = ext if ext.startswith('.') else '.' + ext
    if cv2 is not None:
        return _encode_with_opencv(rgb, ext, quality)
    return _encode_with_pillow(rgb, ext, quality)


def _encode_with_opencv(rgb, ext, quality):
    image = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext.lower() in ('.jpg', '.jpeg') else []
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(image), params)
    if not ok:
        raise ValueError(f'OpenCV could not encode an image of shape {rgb.shape} as {ext}')
    return encoded.tobytes()


def _encode_with_pillow(rgb, ext, quality):
    from PIL import Image
    fmt = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP', '.pgm': 'PPM', '.ppm': 'PPM'}
    output = io.BytesIO()
    Image.fromarray(rgb).save(output, format=fmt.get(ext.lower(), ext.lstrip('.').upper()), quality=int(quality))
    return output.getvalue()
