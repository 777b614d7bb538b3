"""insightface verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...), read without trusting pickle.

Format (docs/face_reference.md §2): a pickled tuple ``(bins, issame_list)``. ``bins`` holds 2N encoded images
(pair ``i`` = entries ``2i`` and ``2i + 1``), ``issame_list`` N booleans. Old files were written by Python 2
(images as ``str``, read back with ``encoding='bytes'``), newer ones hold each image as a uint8 numpy array.

These files come from users and mirrors, and a pickle can run any callable it names. :class:`SafeUnpickler`
therefore resolves only the few numpy reconstruction helpers and builtins such files use, and refuses
everything else before it is called.
"""
import io
import pickle
from collections import namedtuple

import numpy as np

VerificationSet = namedtuple('VerificationSet', ['images', 'issame'])
VerificationSet.__doc__ = '``images``: list of 2N encoded-image ``bytes``; ``issame``: bool array of N pairs.'

BIN_VARIANTS = ('bytes', 'numpy')


def _numpy_core():
    return getattr(np, '_core', None) or np.core  # numpy >= 2 renamed numpy.core to numpy._core


def _allowed_globals():
    core = _numpy_core()
    numpy_helpers = {
        '_reconstruct': core.multiarray._reconstruct,  # ndarray.__reduce__, protocols 2-4
        'scalar': core.multiarray.scalar,  # numpy scalars such as numpy.bool_ in issame lists
        '_frombuffer': core.numeric._frombuffer,  # ndarray.__reduce_ex__ for protocol 5
    }
    allowed = {}
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray', 'numpy.core.numeric', 'numpy._core.numeric'):
        for name, function in numpy_helpers.items():
            allowed[(module, name)] = function
    allowed.update({
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('builtins', 'bytes'): bytes,
        ('builtins', 'bytearray'): bytearray,
        ('__builtin__', 'bytearray'): bytearray,
        ('_codecs', 'encode'): _latin1_encode,  # how protocol <= 2 pickles Python 3 bytes
    })
    return allowed


def _latin1_encode(text, encoding='latin1'):
    if encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(f'refusing _codecs.encode with encoding {encoding!r}')
    return text.encode('latin1')


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that a verification set never needs."""


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that builds only bytes, lists, tuples, bools, numbers and numpy arrays / scalars."""

    def __init__(self, file, source='<pickle>'):
        super().__init__(file, encoding='bytes')
        self.source = source
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'{self.source}: refusing to load global {module}.{name}; a verification .bin may only contain '
                'encoded images (bytes or uint8 numpy arrays) and booleans. The file is not a verification set '
                'or was tampered with.') from None


def load_verification_bin(path):
    """Read a verification ``.bin`` into a :class:`VerificationSet` (both the bytes and the numpy variants)."""
    with open(path, 'rb') as handle:
        return _as_verification_set(_safe_load(handle, str(path)), path)


def loads_verification_bin(data, source='<bytes>'):
    """:func:`load_verification_bin` for a pickle already in memory."""
    return _as_verification_set(_safe_load(io.BytesIO(data), source), source)


def _safe_load(handle, source):
    try:
        return SafeUnpickler(handle, source=source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f'{source}: not a readable verification .bin pickle: {error}') from None


def _as_verification_set(content, path):
    if not (isinstance(content, (tuple, list)) and len(content) == 2):
        raise ValueError(f'{path}: expected a pickled (images, issame_list) pair, got {type(content).__name__}')
    images = [_image_bytes(item, path, index) for index, item in enumerate(content[0])]
    issame = np.asarray(content[1], dtype=bool).ravel()
    if len(images) != 2 * len(issame):
        raise ValueError(f'{path}: {len(images)} images for {len(issame)} pairs; expected exactly two per pair')
    return VerificationSet(images, issame)


def _image_bytes(item, path, index):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise ValueError(f'{path}: image {index} is a {type(item).__name__}, expected bytes or a uint8 array')


def write_verification_bin(path, images, issame, variant='bytes', protocol=pickle.HIGHEST_PROTOCOL):
    """Write a verification ``.bin`` from 2N encoded images (bytes) and N booleans.

    ``variant='bytes'`` stores each image as ``bytes`` (the classic files); ``'numpy'`` stores uint8 arrays.
    """
    if variant not in BIN_VARIANTS:
        raise ValueError(f'variant must be one of {BIN_VARIANTS}, got {variant!r}')
    issame = [bool(value) for value in issame]
    if len(images) != 2 * len(issame):
        raise ValueError(f'{len(images)} images for {len(issame)} pairs; expected exactly two per pair')
    if variant == 'numpy':
        images = [np.frombuffer(bytes(image), dtype=np.uint8).copy() for image in images]
    else:
        images = [bytes(image) for image in images]
    with open(path, 'wb') as handle:
        pickle.dump((images, issame), handle, protocol=protocol)
