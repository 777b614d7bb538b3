"""The teacher-output cache: exact reads, lazy fill, compression, stale caches (edited training data included) and
uncacheable methods refused, and golden runs whose losses equal the live teacher's bit for bit."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from cache_helpers import FLIP_PIPELINE, quickstart_cfg, train
from run_helpers import QUICKSTART, random_vit_teacher

from mmengine.dataset import BaseDataset

from kdzoo.datasets import ReplayDataset
from kdzoo.engine.cache_store import decode_topk
from kdzoo.models import DistillModel


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    return random_vit_teacher(str(tmp_path_factory.mktemp('teacher') / 'vit.safetensors'))


def build_model(teacher, method='kd', cache=None, **overrides):
    cfg = Config.fromfile(osp.join(QUICKSTART, f'{method}.py')).model.to_dict()
    cfg.pop('type')
    cfg['teachers']['vit']['checkpoint'] = teacher
    cfg.update(overrides)
    if cache:
        cfg['teacher_cache'] = cache
    return DistillModel(**cfg)


def replay(views=1, pipeline=None, items=12):
    return ReplayDataset(dict(type='kdzoo.EmbeddedMNIST', split='train', num_items=items,
                              pipeline=pipeline or [dict(type='mmpretrain.PackInputs')]), views=views)


def batch(model, dataset, ids):
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in ids]), True)
    return data['inputs'], data['data_samples']


def opened(teacher, tmp_path, data, method='kd', **cache):
    model = build_model(teacher, method, cache=dict(path=str(tmp_path / 'cache'), views=data.views, **cache))
    model.teacher_cache.open(data)
    return model


def test_lazy_fill_then_exact_reads_with_the_probed_specs(teacher, tmp_path):
    data = replay()
    model = opened(teacher, tmp_path, data, method='fitnet')
    inputs, samples = batch(model, data, range(8))
    live = model.run_teachers(inputs)
    first = model.teacher_cache.features(inputs, samples)       # all missing: computed and written
    assert model.teacher_cache.store.filled() == 8
    again = model.teacher_cache.features(inputs, samples)       # all read back
    for tap, feature in live['vit'].items():
        assert torch.equal(first['vit'][tap].data, feature.data) and torch.equal(again['vit'][tap].data, feature.data)
        assert again['vit'][tap].spec == model.recorders['vit'].specs[tap] == feature.spec
    inputs, samples = batch(model, data, [9, 2, 10, 5])          # half written, half missing
    mixed = model.teacher_cache.features(inputs, samples)
    live = model.run_teachers(inputs)
    assert all(torch.equal(mixed['vit'][tap].data, live['vit'][tap].data) for tap in live['vit'])
    assert model.teacher_cache.store.filled() == 10


def test_fp16_store_rounds_each_value_to_half(teacher, tmp_path):
    data = replay()
    model = opened(teacher, tmp_path, data, dtype='fp16')
    inputs, samples = batch(model, data, range(4))
    live = model.run_teachers(inputs)['vit']['logits'].data
    model.teacher_cache.features(inputs, samples)
    cached = model.teacher_cache.features(inputs, samples)['vit']['logits'].data
    assert torch.equal(cached, live.half().float())


def test_topk_keeps_the_top_logits_and_spreads_the_rest_uniformly():
    logits = torch.tensor([[4.0, 1.0, 3.0, -2.0, 0.5]])
    values, indices = logits.topk(2, dim=1)
    rebuilt = decode_topk(values, indices, logits.logsumexp(1), 5)
    assert torch.equal(rebuilt[0, [0, 2]], values[0])
    probs, teacher_probs = rebuilt.softmax(1), logits.softmax(1)
    torch.testing.assert_close(probs[0, [0, 2]], teacher_probs[0, [0, 2]])
    rest = 1 - teacher_probs[0, [0, 2]].sum()
    torch.testing.assert_close(probs[0, [1, 3, 4]], (rest / 3).expand(3))


def test_topk_cache_decodes_through_the_store(teacher, tmp_path):
    data = replay()
    model = opened(teacher, tmp_path, data, topk=3)
    inputs, samples = batch(model, data, range(4))
    live = model.run_teachers(inputs)['vit']['logits'].data
    model.teacher_cache.features(inputs, samples)
    cached = model.teacher_cache.features(inputs, samples)['vit']['logits'].data
    values, indices = live.topk(3, dim=1)
    assert torch.equal(cached.gather(1, indices), values)
    assert torch.equal(cached.argmax(1), live.argmax(1))
    torch.testing.assert_close(cached.softmax(1).gather(1, indices), live.softmax(1).gather(1, indices))


def test_a_half_written_entry_is_recomputed(teacher, tmp_path):
    data = replay()
    model = opened(teacher, tmp_path, data)
    inputs, samples = batch(model, data, range(4))
    first = model.teacher_cache.features(inputs, samples)['vit']['logits'].data
    store = model.teacher_cache.store
    array = next(iter(store.arrays.values()))
    array[2] = np.nan          # a writer died after writing entry 2's data, before its written-map byte
    store.written[2] = 0
    again = model.teacher_cache.features(inputs, samples)['vit']['logits'].data
    # the missing sample alone is run live (batch-size-dependent kernels may change its last bits)
    assert torch.equal(again[2], model.run_teachers(inputs[2:3])['vit']['logits'].data[0])
    assert torch.equal(again[[0, 1, 3]], first[[0, 1, 3]])
    assert store.written[2] == 1


def test_stale_caches_are_refused_naming_what_differs(teacher, tmp_path):
    data = replay()
    opened(teacher, tmp_path, data)
    other = random_vit_teacher(str(tmp_path / 'other.safetensors'))
    with pytest.raises(ValueError, match=r'teachers\.vit\.weights_sha256 differs'):
        opened(other, tmp_path, data)
    flipped = replay(pipeline=FLIP_PIPELINE)
    with pytest.raises(ValueError, match=r'data\.dataset\.pipeline differs'):
        opened(teacher, tmp_path, flipped)
    with pytest.raises(ValueError, match=r'dtype differs \(cache: fp32, now: fp16\)'):
        opened(teacher, tmp_path, data, dtype='fp16')
    fitnet = opened(teacher, tmp_path, data, method='fitnet')    # other taps: a folder of their own beside it
    assert osp.dirname(fitnet.teacher_cache.folder) == str(tmp_path / 'cache')
    assert osp.basename(fitnet.teacher_cache.folder) != 'vit.logits'
    with pytest.raises(ValueError, match='views=2, seed=0 but the training set'):
        model = build_model(teacher, cache=dict(path=str(tmp_path / 'cache'), views=2))
        model.teacher_cache.open(data)


class CsvImages(BaseDataset):
    """``path,label`` rows of a CSV, as a user's own dataset lists its images (docs/adding_a_dataset.md)."""

    def __init__(self, csv):
        self.csv = csv
        super().__init__(pipeline=[dict(type='mmpretrain.PackInputs')])

    def load_data_list(self):
        folder = osp.dirname(self.csv)
        with open(self.csv) as f:
            rows = [line.strip().split(',') for line in f if line.strip()]
        return [dict(img_path=osp.join(folder, path), gt_label=int(label)) for path, label in rows]

    def __repr__(self):
        return f'CsvImages({self.csv!r})'     # what the manifest records as its config


def csv_images(folder, rows):
    """Write ``rows`` [(file name, label)] as a CSV beside small image files; returns the CSV's path."""
    for name, _ in rows:
        if not osp.exists(folder / name):
            (folder / name).write_bytes(name.encode() * 10)
    (folder / 'train.csv').write_text(''.join(f'{name},{label}\n' for name, label in rows))
    return str(folder / 'train.csv')


ROWS = [('a.png', 0), ('b.png', 1), ('c.png', 2), ('d.png', 1)]
EDITS = {
    'one label changed': (lambda folder: csv_images(folder, [*ROWS[:2], ('c.png', 0), ROWS[3]]),
                          r'data\.fingerprint\.data_info_sha256 differs'),
    'rows reordered': (lambda folder: csv_images(folder, [ROWS[1], ROWS[0], *ROWS[2:]]),
                       r'data\.fingerprint\.data_info_sha256 differs'),
    'one image replaced': (lambda folder: (folder / 'b.png').write_bytes(b'another image'),
                           r'data\.fingerprint\.files_sha256 differs'),
}


@pytest.mark.parametrize('edit', list(EDITS))
def test_training_data_edited_in_place_is_refused_naming_the_fingerprint(teacher, tmp_path, edit):
    csv = csv_images(tmp_path, ROWS)
    opened(teacher, tmp_path, ReplayDataset(CsvImages(csv), views=1))
    change, field = EDITS[edit]
    change(tmp_path)
    edited = ReplayDataset(CsvImages(csv), views=1)
    assert len(edited) == len(ROWS) and edited.describe()['dataset'] == f'CsvImages({csv!r})'
    with pytest.raises(ValueError, match=field + r'.*The training data changed.*delete this one to rebuild it'):
        opened(teacher, tmp_path, edited)


def test_unchanged_training_data_reopens_its_cache(teacher, tmp_path):
    csv = csv_images(tmp_path, ROWS)
    first = opened(teacher, tmp_path, ReplayDataset(CsvImages(csv), views=1)).teacher_cache.store
    fingerprint = first.manifest['data']['fingerprint']
    assert fingerprint['files_checked'] == len(ROWS) and len(fingerprint['data_info_sha256']) == 64
    again = opened(teacher, tmp_path, ReplayDataset(CsvImages(csv), views=1)).teacher_cache.store
    assert again.manifest == first.manifest


class VersionedData(CsvImages):
    """A dataset that names its contents itself, e.g. by the version of a database it reads."""

    version = 'v1'

    def fingerprint(self):
        return dict(version=self.version)

    def get_data_info(self, idx):
        raise AssertionError('a dataset with fingerprint() is not read sample by sample')


def test_a_datasets_own_fingerprint_method_is_used(teacher, tmp_path):
    data = VersionedData(csv_images(tmp_path, ROWS))
    assert ReplayDataset(data, views=1).describe()['fingerprint'] == {'version': 'v1'}
    opened(teacher, tmp_path, ReplayDataset(data, views=1))
    data.version = 'v2'
    with pytest.raises(ValueError, match=r'data\.fingerprint\.version differs \(cache: v1, now: v2\)'):
        opened(teacher, tmp_path, ReplayDataset(data, views=1))


class PlainDigits(torch.utils.data.Dataset):
    """A dataset with neither fingerprint() nor get_data_info()."""

    def __len__(self):
        return 3

    def __repr__(self):
        return 'PlainDigits()'


def test_a_dataset_that_cannot_be_fingerprinted_is_recorded_as_such_and_logged_once(monkeypatch):
    logged = []
    monkeypatch.setattr('kdzoo.datasets.replay.print_log', lambda message, **kwargs: logged.append(message))
    data = ReplayDataset(PlainDigits(), views=1)
    assert data.describe()['fingerprint'] is None and data.describe()['fingerprint'] is None
    assert len(logged) == 1 and 'PlainDigits defines no fingerprint() and no get_data_info()' in logged[0]


def test_a_cache_written_before_data_fingerprints_is_refused_naming_the_fix(teacher, tmp_path):
    data = replay()
    store = opened(teacher, tmp_path, data).teacher_cache.store
    manifest_path = osp.join(store.path, 'manifest.json')
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest['format'] = 1
    del manifest['data']['fingerprint']
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f)
    with pytest.raises(ValueError, match=r'manifest format 1, but this kdzoo reads format 2 \(format 2 adds '
                                         r'data\.fingerprint.*point model\.teacher_cache\.path at a new folder, or '
                                         r'delete this one to rebuild it'):
        opened(teacher, tmp_path, data)


def test_embedded_mnist_is_fingerprinted_by_its_pixels_and_labels():
    digits = replay(items=6).describe()['fingerprint']
    assert digits == replay(items=6).describe()['fingerprint'] and digits['files_checked'] == 0
    assert digits['data_info_sha256'] != replay(items=7).describe()['fingerprint']['data_info_sha256']


def test_a_recordio_set_is_fingerprinted_by_its_files_and_keys(tmp_path):
    from kdzoo.face.datasets import FaceRecordIODataset
    from kdzoo.face.datasets.recordio import RecordIOWriter

    def write(labels):
        with RecordIOWriter(tmp_path / 'train.rec') as writer:
            for key, label in enumerate(labels):
                writer.write_labelled(key, float(label), b'image')
    write([0, 1, 1])
    before = FaceRecordIODataset(str(tmp_path), layout='im2rec').fingerprint()
    assert before == FaceRecordIODataset(str(tmp_path), layout='im2rec').fingerprint()
    assert before['files']['property'] == 'missing'
    stat = os.stat(tmp_path / 'train.rec')
    write([0, 1, 0])                              # one label changed: same size, the file is rewritten later
    os.utime(tmp_path / 'train.rec', ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))  # coarse clocks
    after = FaceRecordIODataset(str(tmp_path), layout='im2rec').fingerprint()
    assert after['files']['rec'] != before['files']['rec'] and after['keys_sha256'] == before['keys_sha256']


def test_a_verification_bin_is_fingerprinted_by_its_file_and_image_order(tmp_path):
    from kdzoo.face.datasets import FaceVerificationBin
    from kdzoo.face.datasets.verification_bin import write_verification_bin
    write_verification_bin(tmp_path / 'lfw.bin', [b'one', b'two', b'three', b'four'], [True, False])
    whole = FaceVerificationBin(str(tmp_path / 'lfw.bin')).fingerprint()
    stat = os.stat(tmp_path / 'lfw.bin')
    assert whole['files']['bin'] == f'{stat.st_size},{stat.st_mtime_ns}'
    subset = FaceVerificationBin(str(tmp_path / 'lfw.bin'), indices=[1, 0]).fingerprint()
    assert subset['files'] == whole['files'] and subset['indices_sha256'] != whole['indices_sha256']
    write_verification_bin(tmp_path / 'lfw.bin', [b'one', b'two', b'three', b'a longer fourth'], [True, False])
    assert FaceVerificationBin(str(tmp_path / 'lfw.bin')).fingerprint()['files'] != whole['files']


def test_methods_whose_teacher_side_trains_cannot_use_the_cache(teacher, tmp_path):
    cache = dict(path=str(tmp_path / 'cache'), views=1)
    with pytest.raises(ValueError, match=r"adapter AFP trains on teacher 'vit'.*FOFA reads a second teacher pass"):
        build_model(teacher, 'fofa', cache=cache)
    mixup = dict(type='mmpretrain.ClsDataPreprocessor', mean=[33.3], std=[78.6], num_classes=10,
                 batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8)]))
    with pytest.raises(ValueError, match='batch_augments'):
        build_model(teacher, cache=cache, data_preprocessor=mixup)
    with pytest.raises(TypeError, match="unknown keys \\['view'\\]"):
        build_model(teacher, cache=dict(path=str(tmp_path), view=1))


def test_topk_is_refused_for_face_embeddings(tmp_path):
    cfg = Config.fromfile(osp.join(osp.dirname(QUICKSTART), 'face', 'orl_kd.py')).model.to_dict()
    cfg.pop('type')
    cfg['teachers']['swin']['checkpoint'] = None
    with pytest.raises(ValueError, match='output embeddings'):
        DistillModel(**cfg, teacher_cache=dict(path=str(tmp_path), views=2, topk=10))


def test_a_batch_without_replay_identity_is_named(teacher, tmp_path):
    data = replay()
    model = opened(teacher, tmp_path, data)
    plain = data.dataset
    inputs, samples = batch(model, plain, range(2))
    with pytest.raises(KeyError, match='wrap the training set in ReplayDataset'):
        model.teacher_cache.features(inputs, samples)


# ------------------------------------------------------------------ golden runs through the Runner
@pytest.fixture(scope='module')
def live_run(teacher, tmp_path_factory):
    return train(quickstart_cfg(tmp_path_factory.mktemp('live'), teacher, epochs=3, items=48))


def test_cached_losses_equal_the_live_teachers_bit_for_bit(teacher, live_run, tmp_path):
    losses, weights = train(quickstart_cfg(tmp_path, teacher, epochs=3, items=48,
                                           cache=dict(path=str(tmp_path / 'cache'))))
    assert len(losses) == 9 and losses == live_run[0]
    assert all(torch.equal(weights[k], live_run[1][k]) for k in weights)


@pytest.mark.slow
def test_cached_run_with_two_workers_and_a_resume_equals_the_live_run(teacher, tmp_path):
    """Both runs stop after epoch 2 and resume (mmengine's resume is compared with itself: resumed runs of the
    quick-start schedule differ from uninterrupted ones in the last bits, with or without the cache)."""
    runs = []
    for name, cache in (('live', None), ('cached', dict(path=str(tmp_path / 'cache')))):
        first, _ = train(quickstart_cfg(tmp_path / name, teacher, epochs=2, items=48, workers=2, cache=cache))
        rest, weights = train(quickstart_cfg(tmp_path / name, teacher, epochs=3, items=48, workers=2, cache=cache),
                              resume=True)
        runs.append((first + rest[-3:], weights))
    (live, live_weights), (cached, cached_weights) = runs
    assert len(cached) == 9 and cached == live
    assert all(torch.equal(cached_weights[k], live_weights[k]) for k in live_weights)


def test_each_views_cached_output_is_the_teacher_on_that_exact_view(teacher, tmp_path):
    """Random flips, K = 2: after two epochs every (sample, view) entry holds the teacher's output on it."""
    cfg = quickstart_cfg(tmp_path, teacher, epochs=2, items=16, pipeline=FLIP_PIPELINE, views=2,
                         cache=dict(path=str(tmp_path / 'cache')))
    train(cfg)
    data = replay(views=2, pipeline=FLIP_PIPELINE, items=16)
    model = opened(teacher, tmp_path, data)
    assert model.teacher_cache.store.filled() == 32
    flips = 0
    for view in range(2):
        inputs, samples = batch(model, data, [(i, view) for i in range(16)])
        cached = model.teacher_cache.features(inputs, samples)['vit']['logits'].data
        torch.testing.assert_close(cached, model.run_teachers(inputs)['vit']['logits'].data, rtol=0, atol=1e-5)
        flips += sum(not torch.equal(data[(i, 0)]['inputs'], data[(i, 1)]['inputs']) for i in range(16)) * view
    assert flips > 0, 'the two views should differ for some samples'


def test_evaluation_and_export_build_the_student_without_the_cache(teacher, tmp_path):
    from kdzoo.registry import MODELS
    from kdzoo.tools_support import student_only_config
    cfg = Config.fromfile(osp.join(QUICKSTART, 'kd.py'))
    cfg.model.teacher_cache = dict(path=str(tmp_path / 'cache'), views=1)
    model = MODELS.build(student_only_config(cfg))
    assert model.teacher_cache is None and not len(model.teachers)
