"""MXNet RecordIO (``.rec`` + ``.idx``) in pure Python/numpy: no ``mxnet`` import.

Format (docs/face_reference.md §1; dmlc-core ``recordio.h``, MXNet ``recordio.py``):

* A ``.rec`` file is a run of chunks. Chunk = uint32 LE magic ``0xCED7230A`` (bytes ``0a 23 d7 ce``), uint32 LE
  ``lrecord = cflag << 29 | length``, then ``length`` bytes zero-padded to a 4-byte boundary.
  ``cflag`` 0 = a whole record; 1 / 2 / 3 = first / middle / last chunk of a record that the writer split
  because the magic value occurred, 4-byte aligned, inside it. The reader joins the chunks with the 4 magic
  bytes between them.
* A ``.idx`` file is text, one ``key<TAB>offset`` line per record; offset = byte position of its first chunk.
* A record starts with the 24-byte ``IRHeader`` (struct ``<IfQQ``: flag, label, id, id2). ``flag > 0`` means
  ``flag`` float32 label values follow (the header's scalar label is then 0). The rest is the encoded image.
* insightface layout: key 0 is a header record with label ``[A, B]`` and no image; keys ``1 .. A-1`` are the
  images, grouped by identity; keys ``A .. B-1`` are one record per identity with label ``[start, end)``.
  A ``property`` text file holds ``num_classes,height,width``. The plain im2rec layout has no header record:
  every key in the ``.idx`` is an image.

The reader is safe with several DataLoader workers: it opens the file lazily in each process (the pid is
tracked, so a forked worker never shares its parent's descriptor) and reads with ``os.pread``, which does not
move a shared file position.
"""
import logging
import os
import struct
import threading
from collections import namedtuple

import numpy as np

from .image_codec import ImageDecodeError, decode_image
from .int_table import read_int_table

logger = logging.getLogger(__name__)

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack('<I', MAGIC)
CHUNK_HEADER = struct.Struct('<II')
IRHEADER = struct.Struct('<IfQQ')
LENGTH_BITS = 29
LENGTH_MASK = (1 << LENGTH_BITS) - 1
CFLAG_WHOLE, CFLAG_START, CFLAG_MIDDLE, CFLAG_END = 0, 1, 2, 3
FLOAT32_EXACT_INT_LIMIT = 2 ** 24
ON_CORRUPT_CHOICES = ('raise', 'skip')
LAYOUT_CHOICES = ('auto', 'insightface', 'im2rec')

IRHeader = namedtuple('IRHeader', ['flag', 'label', 'id', 'id2'])
IRHeader.__doc__ = ("MXNet's record header. ``label`` is a float (flag == 0) or a float32 array of ``flag`` "
                    'values (flag > 0).')


class RecordIOCorruptError(ValueError):
    """A record that cannot be read as the format says; names the file, the record key and its byte offset."""

    def __init__(self, path, key, offset, problem):
        self.path, self.key, self.offset, self.problem = path, key, offset, problem
        super().__init__(f'{path}: record key {key} at byte offset {offset}: {problem}')


# ---------------------------------------------------------------------------------------------------- records

def pack_record(label, image=b'', id=0, id2=0):
    """Serialise an IRHeader plus payload: a scalar ``label`` gives flag 0, a sequence gives a label vector."""
    if np.ndim(label) == 0:
        return IRHEADER.pack(0, float(label), int(id), int(id2)) + bytes(image)
    vector = np.asarray(label, dtype='<f4').ravel()
    return IRHEADER.pack(vector.size, 0.0, int(id), int(id2)) + vector.tobytes() + bytes(image)


def unpack_record(record):
    """Split a joined record into ``(IRHeader, payload)``; raises ValueError when it is too short."""
    if len(record) < IRHEADER.size:
        raise ValueError(f'record has {len(record)} bytes, fewer than the {IRHEADER.size}-byte IRHeader')
    flag, label, id_, id2 = IRHEADER.unpack_from(record, 0)
    payload_start = IRHEADER.size + 4 * flag
    if flag > 0:
        if payload_start > len(record):
            raise ValueError(f'IRHeader announces {flag} label values but the record has only {len(record)} bytes')
        label = np.frombuffer(record, dtype='<f4', count=flag, offset=IRHEADER.size).astype(np.float32)
    return IRHeader(flag, label, id_, id2), record[payload_start:]


def first_label(header):
    """The class label of an image record: the scalar label, or element 0 of a label vector."""
    return float(header.label[0]) if header.flag > 0 else float(header.label)


def split_into_chunks(record):
    """Encode one record as chunks exactly like MXNet's writer: split at every 4-byte-aligned magic value."""
    data = bytes(record)
    chunks, start = [], 0
    for position in _aligned_magic_positions(data):
        chunks.append((CFLAG_START if not chunks else CFLAG_MIDDLE, data[start:position]))
        start = position + 4
    chunks.append((CFLAG_END if chunks else CFLAG_WHOLE, data[start:]))
    return b''.join(_chunk_bytes(cflag, payload) for cflag, payload in chunks)


def _aligned_magic_positions(data):
    position = data.find(MAGIC_BYTES)
    while position != -1:
        if position % 4 == 0:
            yield position
        position = data.find(MAGIC_BYTES, position + 1)


def _chunk_bytes(cflag, payload):
    if len(payload) > LENGTH_MASK:
        raise ValueError(f'a RecordIO chunk holds at most {LENGTH_MASK} bytes, got {len(payload)}')
    padding = b'\0' * (-len(payload) % 4)
    return CHUNK_HEADER.pack(MAGIC, cflag << LENGTH_BITS | len(payload)) + bytes(payload) + padding


def padded(length):
    return (length + 3) & ~3


# ---------------------------------------------------------------------------------------------------- index

class RecordIndex:
    """Record keys and the byte offsets of their first chunks, held as two sorted int64 arrays."""

    def __init__(self, keys, offsets, source):
        keys, offsets = np.asarray(keys, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
        order = np.argsort(keys, kind='stable')
        self.keys, self.offsets, self.source = keys[order], offsets[order], source
        duplicated = self.keys[1:][self.keys[1:] == self.keys[:-1]]
        if duplicated.size:
            raise ValueError(f'{source}: key {int(duplicated[0])} is listed more than once')
        self._dense = bool(len(self.keys) == 0 or (self.keys[0] == 0 and self.keys[-1] == len(self.keys) - 1))

    @classmethod
    def from_idx_file(cls, idx_path):
        """Parse a ``.idx`` file of ``key<TAB>offset`` lines."""
        table = read_int_table(idx_path, ('key', 'offset'))
        return cls(table[:, 0], table[:, 1], idx_path)

    @classmethod
    def from_scan(cls, rec_path):
        """Index a ``.rec`` that has no ``.idx``: keys 0, 1, ... in file order."""
        offsets = scan_record_offsets(rec_path)
        return cls(np.arange(len(offsets)), offsets, f'{rec_path} (scanned, no .idx)')

    def __len__(self):
        return len(self.keys)

    def __contains__(self, key):
        return self.position_of(key) is not None

    def position_of(self, key):
        key = int(key)
        if self._dense:
            return key if 0 <= key < len(self.keys) else None
        position = int(np.searchsorted(self.keys, key))
        return position if position < len(self.keys) and self.keys[position] == key else None

    def offset_of(self, key):
        position = self.position_of(key)
        if position is None:
            raise KeyError(f'record key {key} is not in {self.source}')
        return int(self.offsets[position])

    def missing(self, keys):
        """The subset of ``keys`` (int array) that the index does not list."""
        keys = np.asarray(keys, dtype=np.int64)
        return keys[~np.isin(keys, self.keys)]


def scan_record_offsets(rec_path):
    """Walk the chunk headers of ``rec_path`` and return the offsets where records (cflag 0 or 1) start."""
    offsets, position = [], 0
    size = os.path.getsize(rec_path)
    with open(rec_path, 'rb') as handle:
        while position < size:
            handle.seek(position)
            header = handle.read(CHUNK_HEADER.size)
            magic, lrecord = CHUNK_HEADER.unpack(header) if len(header) == CHUNK_HEADER.size else (None, 0)
            if magic != MAGIC:
                raise RecordIOCorruptError(rec_path, len(offsets), position, 'no RecordIO magic while scanning')
            if lrecord >> LENGTH_BITS in (CFLAG_WHOLE, CFLAG_START):
                offsets.append(position)
            position += CHUNK_HEADER.size + padded(lrecord & LENGTH_MASK)
    return offsets


# ---------------------------------------------------------------------------------------------------- reader

class RecordIOReader:
    """Random access to the records of a ``.rec`` file through its ``.idx``.

    Args:
        rec_path: the ``.rec`` file.
        idx_path: its ``.idx``; ``None`` indexes the ``.rec`` by scanning it once (keys 0, 1, ... in file order).
        on_corrupt: ``'raise'`` (a :class:`RecordIOCorruptError` naming key and byte offset) or ``'skip'``
            (log a warning; :meth:`read_labelled_image` then returns ``None``).
    """

    def __init__(self, rec_path, idx_path=None, on_corrupt='raise'):
        if on_corrupt not in ON_CORRUPT_CHOICES:
            raise ValueError(f'on_corrupt must be one of {ON_CORRUPT_CHOICES}, got {on_corrupt!r}')
        self.rec_path, self.idx_path, self.on_corrupt = os.fspath(rec_path), idx_path, on_corrupt
        self.index = RecordIndex.from_idx_file(idx_path) if idx_path else RecordIndex.from_scan(self.rec_path)
        self._fd, self._fd_pid, self._file_size = None, None, None
        self._lock = threading.Lock()  # only for platforms without os.pread

    def __len__(self):
        return len(self.index)

    @property
    def keys(self):
        return self.index.keys

    # -- process-local file access

    def _descriptor(self):
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.rec_path, os.O_RDONLY | getattr(os, 'O_BINARY', 0))
            self._fd_pid = os.getpid()
            self._file_size = os.fstat(self._fd).st_size
        return self._fd

    def _read_at(self, offset, size):
        fd = self._descriptor()
        if hasattr(os, 'pread'):
            parts, done = [], 0
            while done < size:
                part = os.pread(fd, size - done, offset + done)
                if not part:
                    break
                parts.append(part)
                done += len(part)
            return b''.join(parts)
        with self._lock:  # pragma: no cover - Windows
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)

    def close(self):
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._fd_pid = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may already be gone
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_fd=None, _fd_pid=None, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- records

    def offset_of(self, key):
        return self.index.offset_of(key)

    def read_record(self, key):
        """The raw record bytes of ``key`` (IRHeader + label vector + payload), split chunks re-joined."""
        offset = self.index.offset_of(key)
        self._descriptor()
        parts, position, allowed = [], offset, (CFLAG_WHOLE, CFLAG_START)
        while True:
            cflag, length = self._read_chunk_header(key, offset, position, allowed)
            if position + CHUNK_HEADER.size + length > self._file_size:
                raise RecordIOCorruptError(
                    self.rec_path, key, offset,
                    f'truncated: the chunk at byte {position} announces {length} bytes, past the end of the file '
                    f'({self._file_size} bytes)')
            parts.append(self._read_at(position + CHUNK_HEADER.size, length))
            if cflag in (CFLAG_WHOLE, CFLAG_END):
                return MAGIC_BYTES.join(parts)
            position += CHUNK_HEADER.size + padded(length)
            allowed = (CFLAG_MIDDLE, CFLAG_END)

    def _read_chunk_header(self, key, offset, position, allowed):
        where = 'the record' if position == offset else f'a continuation chunk at byte {position}'
        if position + CHUNK_HEADER.size > self._file_size:
            raise RecordIOCorruptError(self.rec_path, key, offset,
                                       f'truncated: {where} starts past the end of the file '
                                       f'({self._file_size} bytes)')
        magic, lrecord = CHUNK_HEADER.unpack(self._read_at(position, CHUNK_HEADER.size))
        if magic != MAGIC:
            raise RecordIOCorruptError(self.rec_path, key, offset,
                                       f'bad magic 0x{magic:08x} (expected 0x{MAGIC:08x}) at {where}; '
                                       'the file is corrupt or the .idx does not belong to it')
        cflag = lrecord >> LENGTH_BITS
        if cflag not in allowed:
            raise RecordIOCorruptError(self.rec_path, key, offset,
                                       f'{where} has continuation flag {cflag}, expected one of {allowed}; '
                                       'the .idx points into the middle of a split record or a chunk is missing')
        return cflag, lrecord & LENGTH_MASK

    def read_header(self, key):
        """``(IRHeader, payload)`` of record ``key``."""
        record = self.read_record(key)
        try:
            return unpack_record(record)
        except ValueError as error:
            raise RecordIOCorruptError(self.rec_path, key, self.offset_of(key), str(error)) from None

    def read_labelled_image(self, key, on_corrupt=None):
        """``(label, rgb_image)`` of image record ``key`` (label: scalar, or element 0 of the vector).

        With ``on_corrupt='skip'`` (this call's value, else the reader's) a corrupt record logs a warning and
        gives ``None``.
        """
        try:
            header, payload = self.read_header(key)
            return first_label(header), self._decode(key, payload)
        except RecordIOCorruptError as error:
            if (on_corrupt or self.on_corrupt) == 'raise':
                raise
            logger.warning('Skipping corrupt record: %s', error)
            return None

    def _decode(self, key, payload):
        try:
            return decode_image(payload)
        except ImageDecodeError as error:
            raise RecordIOCorruptError(self.rec_path, key, self.offset_of(key),
                                       f'the image does not decode ({error})') from None

    # -- layouts

    def insightface_bounds(self):
        """``(A, B)`` from the insightface header record (key 0), or ``None`` for the plain im2rec layout.

        The header record is recognised by a 2-value label vector and an empty payload. Float32 holds integers
        exactly only up to 2**24; beyond that (Glint360K has 17M images) ``A`` is located exactly as the first
        key near the stored value whose record is an identity record.
        """
        if 0 not in self.index:
            return None
        header, payload = self.read_header(0)
        if not (header.flag == 2 and len(payload) == 0 and 1 <= header.label[0] <= header.label[1]):
            return None
        stored_a, stored_b = (int(round(float(value))) for value in header.label)
        if stored_a < FLOAT32_EXACT_INT_LIMIT:
            return stored_a, stored_b
        exact_a = self._first_identity_key_near(stored_a)
        return exact_a, exact_a + (stored_b - stored_a)

    def _first_identity_key_near(self, approximate_key):
        tolerance = max(2, int(np.spacing(np.float32(approximate_key))))
        for key in range(approximate_key - tolerance, approximate_key + tolerance + 1):
            if key in self.index and self._is_identity_record(key):
                return key
        raise RecordIOCorruptError(self.rec_path, 0, self.offset_of(0),
                                   f'the header record says identity records start near key {approximate_key} '
                                   f'(float32 is inexact there) but none was found within ±{tolerance} keys')

    def _is_identity_record(self, key):
        header, payload = self.read_header(key)
        return header.flag == 2 and len(payload) == 0

    def image_keys(self, layout='auto'):
        """Keys of the image records: ``1 .. A-1`` for insightface, every ``.idx`` key for im2rec.

        A header that names keys the ``.idx`` lacks raises (or, with ``on_corrupt='skip'``, warns and drops them).
        """
        if layout not in LAYOUT_CHOICES:
            raise ValueError(f'layout must be one of {LAYOUT_CHOICES}, got {layout!r}')
        bounds = None if layout == 'im2rec' else self.insightface_bounds()
        if bounds is None:
            if layout == 'insightface':
                raise RecordIOCorruptError(self.rec_path, 0, self._offset_or_none(0),
                                           'layout="insightface" but record 0 is not a header record '
                                           '(2-value label, empty payload)')
            return self.index.keys.copy()
        return self._check_announced_keys(np.arange(1, bounds[0], dtype=np.int64), bounds)

    def _check_announced_keys(self, keys, bounds):
        missing = self.index.missing(keys)
        if missing.size == 0:
            return keys
        error = RecordIOCorruptError(
            self.rec_path, 0, self.offset_of(0),
            f'the header record announces image keys 1..{bounds[0] - 1} (identities {bounds[0]}..{bounds[1] - 1}) '
            f'but {missing.size} of them are missing from {self.index.source} '
            f'(first missing: {missing[:5].tolist()}); the .idx and .rec disagree')
        if self.on_corrupt == 'raise':
            raise error
        logger.warning('%s; using the %d keys present', error, keys.size - missing.size)
        return keys[np.isin(keys, self.index.keys)]

    def _offset_or_none(self, key):
        return self.offset_of(key) if key in self.index else None

    def identity_ranges(self):
        """``{class_index: (start_key, end_key)}`` from the insightface identity records, or ``{}`` for im2rec."""
        bounds = self.insightface_bounds()
        if bounds is None:
            return {}
        ranges = {}
        for class_index, key in enumerate(range(bounds[0], bounds[1])):
            header, _ = self.read_header(key)
            ranges[class_index] = (int(header.label[0]), int(header.label[1]))
        return ranges


# ---------------------------------------------------------------------------------------------------- writer

class RecordIOWriter:
    """Write a ``.rec`` and its ``.idx`` the way MXNet's ``MXIndexedRecordIO`` does.

    Records are split into cflag 1/2/3 chunks wherever the magic value occurs 4-byte aligned inside them (as
    MXNet does), so a record whose IRHeader ``id`` / ``id2`` equals ``MAGIC`` is a convenient split record.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = os.fspath(rec_path)
        self.idx_path = idx_path if idx_path is not None else os.path.splitext(self.rec_path)[0] + '.idx'
        self._rec = open(self.rec_path, 'wb')
        self._idx = open(self.idx_path, 'w')

    def write(self, key, record):
        """Append the raw ``record`` bytes under ``key``; returns its byte offset."""
        offset = self._rec.tell()
        self._rec.write(split_into_chunks(record))
        self._idx.write(f'{int(key)}\t{offset}\n')
        return offset

    def write_labelled(self, key, label, image=b'', id=None, id2=0):
        """Append an IRHeader record (``id`` defaults to ``key``, as im2rec and insightface write it)."""
        return self.write(key, pack_record(label, image, key if id is None else id, id2))

    def write_insightface_header(self, num_images, num_classes):
        """Key 0: label ``[A, B]`` with ``A = num_images + 1`` and ``B = A + num_classes``, empty payload."""
        first_identity_key = num_images + 1
        return self.write_labelled(0, [first_identity_key, first_identity_key + num_classes])

    def close(self):
        self._rec.close()
        self._idx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def write_insightface_recordio(rec_path, idx_path, images_by_identity):
    """Write a complete insightface-layout ``.rec``/``.idx``.

    Args:
        images_by_identity: one sequence of encoded images (bytes) per identity; identity ``i`` gets label ``i``.

    Returns:
        ``(num_images, num_classes)``.
    """
    counts = [len(images) for images in images_by_identity]
    num_images, num_classes = sum(counts), len(counts)
    with RecordIOWriter(rec_path, idx_path) as writer:
        writer.write_insightface_header(num_images, num_classes)
        key = 1
        for label, images in enumerate(images_by_identity):
            for image in images:
                writer.write_labelled(key, float(label), image)
                key += 1
        start = 1
        for label, count in enumerate(counts):
            writer.write_labelled(num_images + 1 + label, [start, start + count])
            start += count
    return num_images, num_classes


def write_property(path, num_classes, height, width):
    """insightface's ``property`` file: ``num_classes,height,width``."""
    with open(path, 'w') as handle:
        handle.write(f'{int(num_classes)},{int(height)},{int(width)}\n')


def read_property(path):
    """``(num_classes, height, width)`` from an insightface ``property`` file."""
    with open(path) as handle:
        text = handle.read().strip()
    try:
        num_classes, height, width = (int(part) for part in text.split(','))
    except ValueError:
        raise ValueError(f'{path}: expected "num_classes,height,width", found {text!r}') from None
    return num_classes, height, width
