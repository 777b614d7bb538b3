"""Face datasets, verification .bin files, embedded ORL, IJB metadata and tools/face2rec.py."""
import importlib.util
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from kdzoo.face.datasets import (ORL_ROOT, ORL_TEST_SUBJECTS, ORL_TRAIN_SUBJECTS, FaceImageFolder,
                                 FaceRecordIODataset, FaceResize, FaceVerificationBin, ORLFaces, UnsafePickleError,
                                 encode_image, ijb_meta_paths, load_verification_bin, orl_subject_split,
                                 read_landmarks_and_scores, read_template_media_list, read_template_pair_list,
                                 write_insightface_recordio, write_property, write_verification_bin)
from kdzoo.face.datasets import image_codec
from kdzoo.face.datasets.recordio import RecordIOCorruptError
from kdzoo.registry import DATASETS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACK = dict(type='mmpretrain.PackInputs')


def tiny_image(value, size=(6, 5)):
    img = np.zeros(size + (3,), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = value, (value * 7) % 256, 255 - value
    return img


def png(value, size=(6, 5)):
    return encode_image(tiny_image(value, size), '.png')


@pytest.fixture
def kdzoo_scope():
    with DefaultScope.overwrite_default_scope('kdzoo'):
        yield


@pytest.fixture
def recordio_root(tmp_path):
    """insightface layout: 4 identities x 3 images; image value = 10 * identity + position."""
    images = [[png(10 * identity + i) for i in range(3)] for identity in range(4)]
    write_insightface_recordio(tmp_path / 'train.rec', tmp_path / 'train.idx', images)
    write_property(tmp_path / 'property', 4, 6, 5)
    return tmp_path


# ------------------------------------------------------------------------------------------ RecordIO dataset

def test_recordio_dataset_items_pack_with_mmpretrain(recordio_root, kdzoo_scope):
    dataset = DATASETS.build(dict(type='FaceRecordIODataset', data_root=str(recordio_root),
                                  pipeline=[dict(type='FaceResize', size=8, mode='stretch'), PACK]))
    assert len(dataset) == 12
    assert dataset.metainfo['num_classes'] == 4 and dataset.metainfo['image_size'] == (6, 5)
    packed = dataset[7]
    assert tuple(packed['inputs'].shape) == (3, 8, 8)
    assert packed['data_samples'].gt_label.tolist() == [2]
    assert packed['data_samples'].sample_idx == 7


def test_recordio_dataset_raw_items_are_rgb(recordio_root):
    item = FaceRecordIODataset(str(recordio_root))[4]
    assert item['gt_label'] == 1 and item['rec_key'] == 5 and item['img'].dtype == np.uint8
    np.testing.assert_array_equal(item['img'], tiny_image(11))


def test_recordio_dataset_im2rec_layout_without_property(recordio_root):
    (recordio_root / 'property').unlink()
    dataset = FaceRecordIODataset(str(recordio_root), layout='insightface')
    assert len(dataset) == 12 and dataset.metainfo['num_classes'] == 4  # from the header record
    plain = FaceRecordIODataset(str(recordio_root), layout='im2rec')
    assert len(plain) == 17 and plain.metainfo['num_classes'] is None  # header + identity records included
    assert dataset.get_cat_ids(11) == [3]


def test_recordio_dataset_with_two_dataloader_workers(recordio_root):
    dataset = FaceRecordIODataset(str(recordio_root), test_mode=True)
    dataset[0]  # the parent process opens the file before forking
    loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=pseudo_collate)
    labels = [label for batch in loader for label in batch['gt_label']]
    assert labels == [identity for identity in range(4) for _ in range(3)]


def test_recordio_dataset_indices_subset(recordio_root):
    dataset = FaceRecordIODataset(str(recordio_root), indices=[0, 11])
    assert len(dataset) == 2 and [dataset[i]['gt_label'] for i in range(2)] == [0, 3]


def test_recordio_dataset_skips_corrupt_records_when_asked(recordio_root, caplog):
    offsets = dict(tuple(map(int, line.split('\t'))) for line in open(recordio_root / 'train.idx'))
    with open(recordio_root / 'train.rec', 'r+b') as handle:
        handle.seek(offsets[2])
        handle.write(b'\0\0\0\0')
    skipping = FaceRecordIODataset(str(recordio_root), on_corrupt='skip')
    with caplog.at_level(logging.WARNING):
        item = skipping[1]  # index 1 = key 2: BaseDataset draws another sample
    assert item['rec_key'] != 2 and f'record key 2 at byte offset {offsets[2]}' in caplog.text
    with pytest.raises(RecordIOCorruptError, match='record key 2'):
        FaceRecordIODataset(str(recordio_root), on_corrupt='skip', test_mode=True)[1]
    with pytest.raises(RecordIOCorruptError, match='bad magic'):
        FaceRecordIODataset(str(recordio_root))[1]


def test_recordio_dataset_property_disagreeing_with_header(recordio_root):
    write_property(recordio_root / 'property', 5, 6, 5)
    with pytest.raises(RecordIOCorruptError, match='announces 4 identities but .*property says 5'):
        FaceRecordIODataset(str(recordio_root))


def test_missing_recordio_root_explains_layout_and_quick_start(tmp_path):
    root = tmp_path / 'faces_emore'
    with pytest.raises(FileNotFoundError) as caught:
        FaceRecordIODataset(str(root))
    message = str(caught.value)
    for name in ('train.rec', 'train.idx', 'property'):
        assert f'MISSING {root / name}' in message
    assert 'key<TAB>byte_offset' in message and 'num_classes,112,112' in message
    assert 'configs/face/orl_*.py' in message and 'tools/face2rec.py' in message


def test_missing_image_folder_and_bin_name_their_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match='one sub-folder per identity') as caught:
        FaceImageFolder(str(tmp_path / 'nope'))
    assert str(tmp_path / 'nope') in str(caught.value) and 'configs/face/orl_*.py' in str(caught.value)
    with pytest.raises(FileNotFoundError, match='lfw.bin') as caught:
        FaceVerificationBin('lfw.bin', data_root=str(tmp_path))
    assert f'MISSING {tmp_path / "lfw.bin"}' in str(caught.value)


# ------------------------------------------------------------------------------------------ image folder

def test_image_folder_labels_follow_sorted_identity_names(tmp_path, kdzoo_scope):
    for name, value in (('bob', 1), ('alice', 2), ('carol', 3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'a.png').write_bytes(png(value))
    (tmp_path / 'alice' / 'notes.txt').write_text('not an image')
    dataset = FaceImageFolder(str(tmp_path), pipeline=[PACK])
    assert dataset.metainfo['classes'] == ('alice', 'bob', 'carol') and len(dataset) == 3
    packed = dataset[1]
    assert packed['data_samples'].gt_label.tolist() == [1]
    assert packed['data_samples'].img_path.endswith(os.path.join('bob', 'a.png'))
    np.testing.assert_array_equal(packed['inputs'].permute(1, 2, 0).numpy(), tiny_image(1))


# ------------------------------------------------------------------------------------------ verification .bin

@pytest.mark.parametrize('variant', ['bytes', 'numpy'])
@pytest.mark.parametrize('protocol', [2, pickle.HIGHEST_PROTOCOL])
def test_verification_bin_variants(tmp_path, variant, protocol):
    images, issame = [png(v) for v in range(6)], [True, False, True]
    write_verification_bin(tmp_path / 'lfw.bin', images, np.array(issame), variant=variant, protocol=protocol)
    loaded = load_verification_bin(tmp_path / 'lfw.bin')
    assert loaded.images == images and loaded.issame.tolist() == issame
    dataset = FaceVerificationBin(str(tmp_path / 'lfw.bin'))
    assert len(dataset) == 6 and dataset.metainfo['issame'].tolist() == issame
    assert dataset.metainfo['num_pairs'] == 3 and dataset.metainfo['name'] == 'lfw'
    item = dataset[4]
    assert item['gt_label'] == item['img_index'] == item['sample_idx'] == 4
    np.testing.assert_array_equal(item['img'], tiny_image(4))


def test_verification_bin_numpy_bool_issame(tmp_path):
    with open(tmp_path / 'old.bin', 'wb') as handle:
        pickle.dump(([png(1), png(2)], [np.bool_(False)]), handle, protocol=2)
    assert load_verification_bin(tmp_path / 'old.bin').issame.tolist() == [False]


def test_malicious_pickle_is_refused_before_running_anything(tmp_path):
    marker = tmp_path / 'pwned'

    class RunsACommand:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    with open(tmp_path / 'evil.bin', 'wb') as handle:
        pickle.dump(([RunsACommand(), b'x'], [True]), handle)
    with pytest.raises(UnsafePickleError, match=r'refusing to load global (posix|nt|os)\.system'):
        load_verification_bin(tmp_path / 'evil.bin')
    with pytest.raises(UnsafePickleError, match=r'builtins\.eval'):
        FaceVerificationBin(str(_pickle_calling(tmp_path / 'eval.bin', eval, 'print(1)')))
    assert not marker.exists()


def _pickle_calling(path, function, argument):
    class Calls:
        def __reduce__(self):
            return function, (argument,)

    with open(path, 'wb') as handle:
        pickle.dump(([Calls(), b'x'], [True]), handle)
    return path


def test_verification_bin_shape_errors(tmp_path):
    with pytest.raises(ValueError, match='exactly two per pair'):
        write_verification_bin(tmp_path / 'x.bin', [b'a'], [True])
    with open(tmp_path / 'odd.bin', 'wb') as handle:
        pickle.dump(([b'a', b'b', b'c'], [True]), handle)
    with pytest.raises(ValueError, match='3 images for 1 pairs'):
        load_verification_bin(tmp_path / 'odd.bin')


# ------------------------------------------------------------------------------------------ embedded ORL

def test_orl_split_constant_matches_the_seeded_rule():
    folders = sorted(name for name in os.listdir(ORL_ROOT) if name.startswith('s'))
    assert len(folders) == 38 and 's1' not in folders and 's2' not in folders
    assert orl_subject_split(folders) == (ORL_TRAIN_SUBJECTS, ORL_TEST_SUBJECTS)
    assert len(ORL_TRAIN_SUBJECTS) == 28 and len(ORL_TEST_SUBJECTS) == 10
    assert not set(ORL_TRAIN_SUBJECTS) & set(ORL_TEST_SUBJECTS)


def test_orl_readme_credits_the_authors_and_lists_the_split():
    readme = ' '.join(open(os.path.join(ORL_ROOT, 'README.md')).read().split())
    assert 'When using these images, please give credit to Olivetti Research Laboratory.' in readme
    assert ', '.join(ORL_TRAIN_SUBJECTS) in readme and ', '.join(ORL_TEST_SUBJECTS) in readme
    assert os.path.isfile(os.path.join(ORL_ROOT, 'README.orig'))


def test_orl_test_split_pairs():
    dataset = ORLFaces(split='test')
    assert len(dataset) == 100 and dataset.test_mode
    pairs, issame = dataset.metainfo['pairs'], dataset.metainfo['issame']
    assert pairs.shape == (4950, 2) and np.issubdtype(pairs.dtype, np.integer)
    assert int(issame.sum()) == 450 and int((~issame).sum()) == 4500
    labels = np.array([dataset.get_data_info(i)['gt_label'] for i in range(100)])
    assert (pairs[:, 0] < pairs[:, 1]).all()
    np.testing.assert_array_equal(issame, labels[pairs[:, 0]] == labels[pairs[:, 1]])
    item = dataset[37]
    assert item['img'].shape == (112, 92, 3) and item['gt_label'] == 3
    assert (item['img'][..., 0] == item['img'][..., 2]).all()
    assert item['img_path'].endswith(os.path.join(ORL_TEST_SUBJECTS[3], '8.pgm'))


def test_orl_train_split_through_a_pipeline(kdzoo_scope):
    dataset = DATASETS.build(dict(type='ORLFaces', split='train', pipeline=[dict(type='FaceResize'), PACK]))
    assert len(dataset) == 280 and dataset.metainfo['num_classes'] == 28
    assert dataset.metainfo['classes'] == ORL_TRAIN_SUBJECTS
    packed = dataset[279]
    assert tuple(packed['inputs'].shape) == (3, 112, 112) and packed['data_samples'].gt_label.tolist() == [27]
    with pytest.raises(ValueError, match='split'):
        ORLFaces(split='val')


# ------------------------------------------------------------------------------------------ FaceResize

def test_face_resize_modes():
    img = np.full((112, 92, 3), 200, dtype=np.uint8)
    padded = FaceResize(112)(dict(img=img.copy()))
    assert padded['img'].shape == (112, 112, 3) and padded['img_shape'] == (112, 112)
    assert (padded['img'][:, :10] == 0).all() and (padded['img'][:, 10:102] == 200).all()
    cropped = FaceResize(112, mode='crop')(dict(img=img.copy()))
    assert cropped['img'].shape == (112, 112, 3) and (cropped['img'] == 200).all()
    stretched = FaceResize((56, 40), mode='stretch')(dict(img=img.copy()))
    assert stretched['img'].shape == (56, 40, 3) and stretched['scale_factor'] == (40 / 92, 0.5)


# ------------------------------------------------------------------------------------------ IJB metadata

def test_ijb_metadata_readers(tmp_path):
    meta = tmp_path / 'meta'
    meta.mkdir()
    (tmp_path / 'loose_crop').mkdir()
    (meta / 'ijbc_face_tid_mid.txt').write_text('1.jpg 1 69544\n2.jpg 1 3608\n3.jpg 11 69545\n')
    (meta / 'ijbc_template_pair_label.txt').write_text('1 11065 1\n1 11 0\n')
    points = ' '.join(str(v) for v in range(10))
    (meta / 'ijbc_name_5pts_score.txt').write_text(f'1.jpg {points} 0.99\n2.jpg {points} 0.5\n3.jpg {points} 1\n')
    paths = ijb_meta_paths(str(tmp_path), 'IJBC')
    media = read_template_media_list(paths.template_media)
    assert media.image_names.tolist() == ['1.jpg', '2.jpg', '3.jpg']
    assert media.templates.tolist() == [1, 1, 11] and media.medias.tolist() == [69544, 3608, 69545]
    pairs = read_template_pair_list(paths.template_pairs)
    assert pairs.template1.tolist() == [1, 1] and pairs.template2.tolist() == [11065, 11]
    assert pairs.labels.tolist() == [1, 0]
    landmarks = read_landmarks_and_scores(paths.landmark_scores)
    assert landmarks.landmarks.shape == (3, 5, 2) and landmarks.landmarks[0, 2].tolist() == [4.0, 5.0]
    np.testing.assert_allclose(landmarks.scores, [0.99, 0.5, 1.0])
    with pytest.raises(FileNotFoundError, match='ijbb_template_pair_label.txt'):
        ijb_meta_paths(str(tmp_path), 'IJBB')


# ------------------------------------------------------------------------------------------ tools/face2rec.py

def run_face2rec(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'face2rec.py'), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_face2rec_cli_end_to_end(tmp_path):
    source = tmp_path / 'faces'
    for identity in range(3):
        (source / f'id{identity}').mkdir(parents=True)
        for i in range(4):
            (source / f'id{identity}' / f'{i}.png').write_bytes(png(10 * identity + i, size=(8, 8)))
    out = tmp_path / 'out'
    result = run_face2rec('--root', str(source), '--output', str(out), '--encoding', '.png',
                          '--pairs-bin', str(out / 'pairs.bin'), '--num-pairs', '10', '--seed', '3')
    assert result.returncode == 0, result.stderr
    assert (out / 'property').read_text().strip() == '3,8,8'
    dataset = FaceRecordIODataset(str(out))
    assert len(dataset) == 12 and dataset.metainfo['num_classes'] == 3
    for index in range(12):
        item = dataset[index]
        assert item['gt_label'] == index // 4
        np.testing.assert_array_equal(item['img'], tiny_image(10 * (index // 4) + index % 4, size=(8, 8)))
    pairs = FaceVerificationBin(str(out / 'pairs.bin'))
    issame = pairs.metainfo['issame']
    assert len(pairs) == 20 and int(issame.sum()) == 5
    firsts = [pairs[2 * k]['img'][0, 0, 0] // 10 for k in range(10)]  # identity = pixel value // 10
    seconds = [pairs[2 * k + 1]['img'][0, 0, 0] // 10 for k in range(10)]
    np.testing.assert_array_equal(issame, np.equal(firsts, seconds))


def test_face2rec_help(capsys):
    spec = importlib.util.spec_from_file_location('face2rec', os.path.join(REPO, 'tools', 'face2rec.py'))
    face2rec = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(face2rec)  # in-process: a second interpreter would re-import kdzoo for --help
    with pytest.raises(SystemExit) as exited:
        face2rec.parse_args(['--help'])
    assert exited.value.code == 0
    assert '--pairs-bin' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        face2rec.parse_args(['--root', 'x', '--pairs-only'])
    assert '--pairs-only needs --pairs-bin' in capsys.readouterr().err


def test_decode_speed_tool_times_both_conversions_and_restores_the_codec(recordio_root, capsys):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    'tools'))
    import face_decode_speed
    decode = image_codec._decode_with_opencv
    rates = face_decode_speed.main([str(recordio_root), '--passes', '1'])
    assert set(rates) == {'cv2.cvtColor (kdzoo)', 'strided copy [:, :, ::-1]'} and min(rates.values()) > 0
    assert 'records/s (median of 1 passes over 12 records)' in capsys.readouterr().out
    assert image_codec._decode_with_opencv is decode
