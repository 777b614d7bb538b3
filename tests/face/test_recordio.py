"""MXNet RecordIO reader/writer (kdzoo.face.datasets.recordio): layouts, labels, split records, corruption."""
import logging
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kdzoo.face.datasets import image_codec, recordio
from kdzoo.face.datasets.image_codec import encode_image
from kdzoo.face.datasets.recordio import (MAGIC, RecordIOCorruptError, RecordIOReader, RecordIOWriter,
                                          pack_record, read_property, split_into_chunks, unpack_record,
                                          write_insightface_recordio, write_property)


def tiny_image(value, size=(6, 5)):
    """A small RGB image whose three channels differ, so an RGB/BGR swap would show."""
    img = np.zeros(size + (3,), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = value, (value * 7) % 256, 255 - value
    return img


def png(value):
    return encode_image(tiny_image(value), '.png')


def chunk_flags(rec_path):
    """cflag of every chunk in file order, walking the chunk headers by hand."""
    data, flags, position = open(rec_path, 'rb').read(), [], 0
    while position < len(data):
        magic, lrecord = struct.unpack_from('<II', data, position)
        assert magic == MAGIC
        flags.append(lrecord >> 29)
        position += 8 + ((lrecord & (2 ** 29 - 1)) + 3) // 4 * 4
    return flags


def offsets_from_idx(idx_path):
    return dict(tuple(map(int, line.split('\t'))) for line in open(idx_path))


@pytest.fixture
def insightface_files(tmp_path):
    """3 identities with 2, 3 and 1 images (PNG, lossless); image value = 10 * identity + position."""
    images = [[png(10 * identity + i) for i in range(count)] for identity, count in enumerate([2, 3, 1])]
    rec, idx = tmp_path / 'train.rec', tmp_path / 'train.idx'
    write_insightface_recordio(rec, idx, images)
    return rec, idx


# ------------------------------------------------------------------------------------------ round trips

def test_insightface_layout_round_trip(insightface_files):
    reader = RecordIOReader(*insightface_files)
    assert reader.insightface_bounds() == (7, 10)
    assert reader.image_keys().tolist() == [1, 2, 3, 4, 5, 6]
    assert reader.identity_ranges() == {0: (1, 3), 1: (3, 6), 2: (6, 7)}
    expected = [(0, 0), (0, 1), (1, 10), (1, 11), (1, 12), (2, 20)]
    for key, (label, value) in zip(reader.image_keys(), expected):
        got_label, img = reader.read_labelled_image(key)
        assert got_label == label
        np.testing.assert_array_equal(img, tiny_image(value))


def test_im2rec_layout_scalar_and_vector_labels(tmp_path):
    rec = tmp_path / 'plain.rec'
    with RecordIOWriter(rec) as writer:  # no header record; key 0 is an image with a label vector
        writer.write_labelled(0, [4.0, 9.0, 1.0], png(0))
        writer.write_labelled(1, 2.0, png(1))
        writer.write_labelled(5, [7.0], png(5))
    reader = RecordIOReader(rec, tmp_path / 'plain.idx')
    assert reader.insightface_bounds() is None
    assert reader.image_keys().tolist() == [0, 1, 5]
    assert [reader.read_labelled_image(k)[0] for k in (0, 1, 5)] == [4.0, 2.0, 7.0]
    header, payload = reader.read_header(0)
    assert header.flag == 3 and header.label.tolist() == [4.0, 9.0, 1.0] and header.id == 0
    np.testing.assert_array_equal(reader.read_labelled_image(5)[1], tiny_image(5))
    with pytest.raises(RecordIOCorruptError, match='not a header record'):
        reader.image_keys(layout='insightface')


def test_forced_im2rec_layout_lists_every_key(insightface_files):
    assert RecordIOReader(*insightface_files).image_keys(layout='im2rec').tolist() == list(range(10))


def test_pillow_fallback_decodes_like_opencv(monkeypatch, insightface_files):
    with_opencv = RecordIOReader(*insightface_files).read_labelled_image(3)[1]
    monkeypatch.setattr(image_codec, 'cv2', None)
    np.testing.assert_array_equal(RecordIOReader(*insightface_files).read_labelled_image(3)[1], with_opencv)
    assert image_codec.decode_image(image_codec.encode_image(tiny_image(9), '.png')).tolist() == \
        tiny_image(9).tolist()
    with pytest.raises(image_codec.ImageDecodeError, match='Pillow could not decode'):
        image_codec.decode_image(b'garbage')


def test_opencv_decoding_returns_contiguous_rgb_as_the_strided_bgr_flip():
    import cv2
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (112, 96, 3), dtype=np.uint8)
    decoded = image_codec.decode_image(encode_image(rgb, '.png'))
    reference = np.ascontiguousarray(cv2.imdecode(np.frombuffer(encode_image(rgb, '.png'), np.uint8),
                                                  cv2.IMREAD_COLOR)[:, :, ::-1])
    assert decoded.flags['C_CONTIGUOUS'] and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, reference)
    np.testing.assert_array_equal(decoded, rgb)                    # PNG is lossless: the RGB pixels back
    grey = image_codec.decode_image(cv2.imencode('.pgm', rgb[..., 0])[1].tobytes())
    np.testing.assert_array_equal(grey, np.repeat(rgb[..., :1], 3, axis=2))


def test_pack_and_unpack_record():
    header, payload = unpack_record(pack_record([1.5, 2.0], b'xyz', id=3, id2=4))
    assert (header.flag, header.label.tolist(), header.id, header.id2, payload) == (2, [1.5, 2.0], 3, 4, b'xyz')
    header, payload = unpack_record(pack_record(6, b''))
    assert (header.flag, header.label, payload) == (0, 6.0, b'')


# ------------------------------------------------------------------------------------------ split records

def test_writer_splits_at_aligned_magic_and_reader_rejoins(tmp_path):
    rec = tmp_path / 'split.rec'
    magic = struct.pack('<I', MAGIC)
    image = png(3)
    with RecordIOWriter(rec) as writer:
        writer.write_labelled(0, 1.0, image, id=MAGIC, id2=MAGIC)  # magic at bytes 8 and 16: start/middle/end
        writer.write_labelled(1, 2.0, image, id=MAGIC | MAGIC << 32)  # consecutive magics: an empty middle chunk
        writer.write(2, b'ab' + magic + b'cd')  # unaligned magic: no split
    assert chunk_flags(rec) == [1, 2, 3, 1, 2, 3, 0]
    reader = RecordIOReader(rec, tmp_path / 'split.idx')
    assert reader.read_record(0) == pack_record(1.0, image, MAGIC, MAGIC)
    assert reader.read_record(1) == pack_record(2.0, image, MAGIC | MAGIC << 32)
    assert reader.read_record(2) == b'ab' + magic + b'cd'
    header, _ = reader.read_header(0)
    assert (header.id, header.id2) == (MAGIC, MAGIC)
    np.testing.assert_array_equal(reader.read_labelled_image(1)[1], tiny_image(3))


def test_split_chunks_are_padded_only_at_the_end():
    encoded = split_into_chunks(b'\x01' * 4 + struct.pack('<I', MAGIC) + b'\x02' * 5)
    assert len(encoded) == (8 + 4) + (8 + 8)  # first chunk 4 bytes, last chunk 5 bytes padded to 8
    assert encoded[-3:] == b'\0\0\0'


# ------------------------------------------------------------------------------------------ a file built by hand

def hand_chunk(cflag, payload):
    return struct.pack('<II', 0xced7230a, cflag << 29 | len(payload)) + payload + b'\0' * (-len(payload) % 4)


def hand_pgm(value):
    """A 3x2 binary PGM built from bytes (no encoder involved); grey decodes to equal RGB channels."""
    return b'P5\n3 2\n255\n' + bytes([value, value + 1, value + 2, value + 3, value + 4, value + 5])


def test_reader_on_a_file_built_by_hand_from_the_format(tmp_path):
    header_record = struct.pack('<IfQQ', 2, 0.0, 0, 0) + struct.pack('<2f', 3.0, 4.0)
    image1 = struct.pack('<IfQQ', 0, 0.0, 1, 0) + hand_pgm(10)  # 24 + 17 bytes: padding exercised
    image2_head = struct.pack('<If', 1, 0.0)  # flag=1: one label value; id field (bytes 8..15) is the magic
    image2_tail = struct.pack('<IQ', 0, 0) + struct.pack('<f', 0.0) + hand_pgm(50)
    identity = struct.pack('<IfQQ', 2, 0.0, 3, 0) + struct.pack('<2f', 1.0, 3.0)
    chunks = [(0, hand_chunk(0, header_record)), (1, hand_chunk(0, image1)),
              (2, hand_chunk(1, image2_head) + hand_chunk(3, image2_tail)), (3, hand_chunk(0, identity))]
    blob, idx_lines = b'', ''
    for key, data in chunks:
        idx_lines += f'{key}\t{len(blob)}\n'
        blob += data
    (tmp_path / 'hand.rec').write_bytes(blob)
    (tmp_path / 'hand.idx').write_text(idx_lines)

    reader = RecordIOReader(tmp_path / 'hand.rec', tmp_path / 'hand.idx')
    assert reader.insightface_bounds() == (3, 4)
    assert reader.image_keys().tolist() == [1, 2]
    assert reader.identity_ranges() == {0: (1, 3)}
    label, img = reader.read_labelled_image(1)
    assert label == 0.0 and img.shape == (2, 3, 3)
    assert img[..., 0].ravel().tolist() == [10, 11, 12, 13, 14, 15] and (img[..., 0] == img[..., 2]).all()
    header, payload = reader.read_header(2)
    assert header.flag == 1 and header.label.tolist() == [0.0] and header.id == MAGIC
    assert payload == hand_pgm(50)
    assert reader.read_labelled_image(2)[1][0, 0].tolist() == [50, 50, 50]


def test_rec_without_idx_is_indexed_by_scanning(insightface_files):
    scanned = RecordIOReader(insightface_files[0], idx_path=None)
    indexed = RecordIOReader(*insightface_files)
    assert scanned.keys.tolist() == indexed.keys.tolist()
    assert all(scanned.read_record(k) == indexed.read_record(k) for k in indexed.keys)


# ------------------------------------------------------------------------------------------ several workers

class ReaderDataset(Dataset):
    def __init__(self, reader):
        self.reader, self.keys = reader, reader.image_keys()

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, index):
        label, img = self.reader.read_labelled_image(self.keys[index])
        return int(label), int(img[0, 0, 0]), os.getpid(), self.reader._fd_pid


def test_dataloader_with_two_workers_reads_the_right_records(tmp_path):
    labels = [identity for identity in range(12) for _ in range(4)]
    images = [[png(7 * identity + i) for i in range(4)] for identity in range(12)]
    write_insightface_recordio(tmp_path / 't.rec', tmp_path / 't.idx', images)
    reader = RecordIOReader(tmp_path / 't.rec', tmp_path / 't.idx')
    reader.read_record(1)  # the parent opens its descriptor before the workers fork
    loader = DataLoader(ReaderDataset(reader), batch_size=5, num_workers=2, shuffle=False)
    got_labels, got_values, worker_pids = [], [], set()
    for label, value, pid, fd_pid in loader:
        got_labels += label.tolist()
        got_values += value.tolist()
        assert torch.equal(pid, fd_pid)  # each worker reads through a descriptor of its own
        worker_pids.update(pid.tolist())
    assert got_labels == labels
    assert got_values == [7 * identity + i for identity in range(12) for i in range(4)]
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids


def test_reader_pickles_without_its_descriptor(insightface_files):
    reader = RecordIOReader(*insightface_files)
    reader.read_record(1)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._fd is None and clone.read_record(2) == reader.read_record(2)


# ------------------------------------------------------------------------------------------ corruption

def corrupt_bytes(path, offset, data):
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        handle.write(data)


def test_bad_magic_names_key_and_offset_and_can_be_skipped(insightface_files, caplog):
    rec, idx = insightface_files
    offset = offsets_from_idx(idx)[4]
    corrupt_bytes(rec, offset, b'\xde\xad\xbe\xef')
    with pytest.raises(RecordIOCorruptError, match=f'record key 4 at byte offset {offset}: bad magic 0xefbeadde'):
        RecordIOReader(rec, idx).read_labelled_image(4)
    skipping = RecordIOReader(rec, idx, on_corrupt='skip')
    with caplog.at_level(logging.WARNING):
        assert skipping.read_labelled_image(4) is None
    assert f'record key 4 at byte offset {offset}' in caplog.text
    assert skipping.read_labelled_image(5)[0] == 1.0


def test_truncated_file_names_key_and_offset(insightface_files, caplog):
    rec, idx = insightface_files
    offset = offsets_from_idx(idx)[6]
    os.truncate(rec, offset + 20)
    reader = RecordIOReader(rec, idx)
    with pytest.raises(RecordIOCorruptError, match=f'record key 6 at byte offset {offset}: truncated'):
        reader.read_labelled_image(6)
    with pytest.raises(RecordIOCorruptError, match=rf'record key 8 at byte offset \d+: truncated'):
        reader.read_record(8)  # its offset now lies past the end of the file
    with caplog.at_level(logging.WARNING):
        assert RecordIOReader(rec, idx, on_corrupt='skip').read_labelled_image(6) is None
    assert 'truncated' in caplog.text


def test_idx_that_disagrees_with_the_header(insightface_files, caplog):
    rec, idx = insightface_files
    lines = open(idx).read().splitlines()
    (idx.parent / 'short.idx').write_text('\n'.join(line for line in lines if line.split('\t')[0] not in ('3', '4')))
    with pytest.raises(RecordIOCorruptError, match=r'record key 0 at byte offset 0: .*announces image keys 1\.\.6'
                                                   r'.* 2 of them are missing .*\[3, 4\]'):
        RecordIOReader(rec, idx.parent / 'short.idx').image_keys()
    with caplog.at_level(logging.WARNING):
        keys = RecordIOReader(rec, idx.parent / 'short.idx', on_corrupt='skip').image_keys()
    assert keys.tolist() == [1, 2, 5, 6] and 'missing' in caplog.text


def test_idx_offset_into_a_split_record(tmp_path):
    rec = tmp_path / 's.rec'
    with RecordIOWriter(rec) as writer:
        writer.write_labelled(0, 1.0, png(1), id=MAGIC)
    second_chunk = 8 + 8  # first chunk: header + the 8 bytes before the magic id
    (tmp_path / 'bad.idx').write_text(f'0\t{second_chunk}\n')
    with pytest.raises(RecordIOCorruptError, match=f'record key 0 at byte offset {second_chunk}: .*continuation '
                                                   'flag 3'):
        RecordIOReader(rec, tmp_path / 'bad.idx').read_record(0)


def test_undecodable_image_names_key_and_offset(tmp_path, caplog):
    rec = tmp_path / 'u.rec'
    with RecordIOWriter(rec) as writer:
        writer.write_labelled(0, 1.0, png(1))
        offset = writer.write_labelled(1, 2.0, b'definitely not an image')
    with pytest.raises(RecordIOCorruptError, match=f'record key 1 at byte offset {offset}: the image does not '
                                                   'decode'):
        RecordIOReader(rec, tmp_path / 'u.idx').read_labelled_image(1)
    with caplog.at_level(logging.WARNING):
        assert RecordIOReader(rec, tmp_path / 'u.idx', on_corrupt='skip').read_labelled_image(1) is None
    assert 'does not decode' in caplog.text


def test_large_header_values_are_located_exactly(tmp_path, monkeypatch):
    """Float32 is exact only to 2**24 (Glint360K's 17M images exceed it): simulate a header that rounded A up."""
    images = [[png(i) for i in range(3)], [png(9)]]
    rec, idx = tmp_path / 'g.rec', tmp_path / 'g.idx'
    write_insightface_recordio(rec, idx, images)
    with open(rec, 'r+b') as handle:  # rewrite the header label [5, 7] as the rounded [6, 8]
        handle.seek(8 + 24)
        handle.write(struct.pack('<2f', 6.0, 8.0))
    monkeypatch.setattr(recordio, 'FLOAT32_EXACT_INT_LIMIT', 0)
    reader = RecordIOReader(rec, idx)
    assert reader.insightface_bounds() == (5, 7)
    assert reader.image_keys().tolist() == [1, 2, 3, 4]


def test_property_file_round_trip_and_errors(tmp_path):
    write_property(tmp_path / 'property', 85742, 112, 112)
    assert (tmp_path / 'property').read_text() == '85742,112,112\n'
    assert read_property(tmp_path / 'property') == (85742, 112, 112)
    (tmp_path / 'bad').write_text('85742;112')
    with pytest.raises(ValueError, match='num_classes,height,width'):
        read_property(tmp_path / 'bad')


def test_invalid_arguments_are_rejected(insightface_files):
    with pytest.raises(ValueError, match='on_corrupt'):
        RecordIOReader(*insightface_files, on_corrupt='ignore')
    with pytest.raises(ValueError, match='layout'):
        RecordIOReader(*insightface_files).image_keys(layout='mxnet')
    with pytest.raises(KeyError, match='record key 99'):
        RecordIOReader(*insightface_files).read_record(99)
