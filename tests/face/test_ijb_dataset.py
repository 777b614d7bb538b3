"""IJBDataset (kdzoo/face/datasets/ijb_dataset.py), 5-point alignment and the IJB-B/C test sets of the MS1MV2 configs.

A tiny IJB release is written in tmp_path: 12 loose crops made from the embedded ORL faces (3 subjects x 4),
each warped into a larger canvas by a known similarity so that its landmarks are the arcface template mapped by
that similarity; 6 templates of 2 images (2 per subject, one of them a single media), all 15 template pairs
(3 genuine, 12 impostor: enough for a defined TPR at FAR = 1e-1).
"""
import math
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import kdzoo  # noqa: F401  (registers everything)
from kdzoo.face.datasets import (ORL_ROOT, ORL_TEST_SUBJECTS, IJBDataset, align_face, arcface_template,
                                 estimate_similarity, read_image_file)
from kdzoo.face.datasets.ijb import IJB_LAYOUT
from kdzoo.face.datasets.alignment import ARCFACE_TEMPLATE_112
from kdzoo.face.evaluation.verification import format_rate
from kdzoo.face.evaluation.ijb import IJB_FARS, evaluate_ijb
from kdzoo.models import DistillModel
from kdzoo.registry import DATASETS
from run_helpers import ROOT

CAKD = 'configs/face/cakd_urfm_apt.py'
SUBJECTS = ORL_TEST_SUBJECTS[:3]
IMAGES_PER_SUBJECT = 4
TEMPLATE_OF_IMAGE = [101, 101, 102, 102, 201, 201, 202, 202, 301, 301, 302, 302]
MEDIA_OF_IMAGE = [7, 8, 9, 9, 7, 11, 12, 13, 14, 15, 16, 16]  # media 7 in two templates, as in IJB
TINY_EMBEDDER = dict(type='ImportedModel', path='tiny_models:TinyConvNet', in_chans=3, num_classes=16, width=4)


# ---------------------------------------------------------------------------------------------- helpers
def similarity(scale, degrees, shift):
    angle = math.radians(degrees)
    return np.array([[scale * math.cos(angle), -scale * math.sin(angle), shift[0]],
                     [scale * math.sin(angle), scale * math.cos(angle), shift[1]]])


def apply(matrix, points):
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def orl_face_112(subject, number):
    """An ORL face (92 x 112 grey) padded to 112 x 112 and tinted (R > G > B) so channel order is visible."""
    grey = read_image_file(osp.join(ORL_ROOT, subject, f'{number}.pgm'))[:, :, 0].astype(np.float64)
    rgb = np.stack([grey, 0.6 * grey, 0.2 * grey], axis=-1).astype(np.uint8)
    return np.pad(rgb, ((0, 0), (10, 10), (0, 0)))


def write_ijb_release(root, target='IJBC', shuffle_landmark_file=False):
    """A tiny insightface IJB release under ``root``; returns what its files say, in image-list order."""
    prefix = target.lower()
    (root / 'loose_crop').mkdir(parents=True)
    (root / 'meta').mkdir()
    rng = np.random.default_rng(0)
    names, landmarks, scores, aligned = [], [], [], []
    for index in range(len(SUBJECTS) * IMAGES_PER_SUBJECT):
        subject, number = SUBJECTS[index // IMAGES_PER_SUBJECT], 1 + index % IMAGES_PER_SUBJECT
        face = orl_face_112(subject, number)
        placement = similarity(rng.uniform(1.2, 1.8), rng.uniform(-25, 25), rng.uniform(20, 40, size=2))
        loose_crop = cv2.warpAffine(face, placement, (240, 220))
        name = f'{index + 1}.png'
        cv2.imwrite(str(root / 'loose_crop' / name), loose_crop[:, :, ::-1])  # files hold BGR, as cv2 writes
        names.append(name)
        landmarks.append(apply(placement, ARCFACE_TEMPLATE_112))
        scores.append(round(float(rng.uniform(0.5, 1.0)), 4))
        aligned.append(face)
    with open(root / 'meta' / f'{prefix}_face_tid_mid.txt', 'w') as handle:
        handle.writelines(f'{n} {t} {m}\n' for n, t, m in zip(names, TEMPLATE_OF_IMAGE, MEDIA_OF_IMAGE))
    rows = [f'{n} ' + ' '.join(f'{v:.4f}' for v in lmk.reshape(-1)) + f' {s}\n'
            for n, lmk, s in zip(names, landmarks, scores)]
    with open(root / 'meta' / f'{prefix}_name_5pts_score.txt', 'w') as handle:
        handle.writelines(rows[::-1] if shuffle_landmark_file else rows)
    templates = sorted(set(TEMPLATE_OF_IMAGE))
    p1, p2 = zip(*[(a, b) for i, a in enumerate(templates) for b in templates[i + 1:]])
    labels = [int(a // 100 == b // 100) for a, b in zip(p1, p2)]
    with open(root / 'meta' / f'{prefix}_template_pair_label.txt', 'w') as handle:
        handle.writelines(f'{a} {b} {label}\n' for a, b, label in zip(p1, p2, labels))
    return dict(names=names, landmarks=np.array(landmarks), detector_scores=np.array(scores), aligned=aligned,
                templates=TEMPLATE_OF_IMAGE, medias=MEDIA_OF_IMAGE, p1=list(p1), p2=list(p2), labels=labels)


def build(cfg):
    with DefaultScope.overwrite_default_scope('kdzoo'):
        return DATASETS.build(cfg)


def blob_centre(img, point, radius=4):
    """Intensity-weighted centre of the bright blob near ``point`` (x, y)."""
    x0, y0 = int(round(point[0])), int(round(point[1]))
    window = img[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].astype(np.float64)
    ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def load_config(path):
    return Config.fromfile(osp.join(ROOT, path))


@pytest.fixture
def ijbc(tmp_path):
    root = tmp_path / 'IJBC'
    return root, write_ijb_release(root, 'IJBC')


# ---------------------------------------------------------------------------------------------- alignment
def test_template_is_the_urfm_one_and_scales_with_the_face_size():
    np.testing.assert_allclose(arcface_template(), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), 2 * np.asarray(ARCFACE_TEMPLATE_112))
    with pytest.raises(ValueError, match='multiple of 112'):
        arcface_template(128)


def test_estimate_similarity_recovers_a_similarity_and_is_least_squares():
    template = arcface_template()
    truth = similarity(0.6, -30, (12.5, -4.0))
    np.testing.assert_allclose(estimate_similarity(template, apply(truth, template)), truth, atol=1e-9)
    # noisy points: the 4-parameter linear least-squares problem (x' = a x - b y + tx, y' = b x + a y + ty)
    rng = np.random.default_rng(1)
    src, dst = rng.uniform(0, 100, (5, 2)), rng.uniform(0, 100, (5, 2))
    design = np.concatenate([np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], 1),
                             np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    np.testing.assert_allclose(estimate_similarity(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)
    with pytest.raises(ValueError, match='coincide'):
        estimate_similarity(np.ones((5, 2)), template)


def test_alignment_puts_the_landmarks_on_the_template():
    """Red Gaussian dots drawn at the landmarks of a rotated, scaled, shifted face land on the template points."""
    landmarks = apply(similarity(1.7, 20, (60, 25)), ARCFACE_TEMPLATE_112)
    ys, xs = np.mgrid[0:260, 0:240]
    dots = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5 ** 2)) for x, y in landmarks)
    img = np.zeros((260, 240, 3), dtype=np.uint8)
    img[:, :, 0] = np.clip(255 * dots, 0, 255).astype(np.uint8)
    aligned = align_face(img, landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    assert aligned[:, :, 1:].max() == 0  # channels are not reordered
    for point in ARCFACE_TEMPLATE_112:
        assert np.linalg.norm(blob_centre(aligned[:, :, 0], point) - point) < 0.25, point
    with pytest.raises(ValueError, match='5 \\(x, y\\) landmarks'):
        align_face(img, landmarks[:4])


# ---------------------------------------------------------------------------------------------- dataset
def test_metainfo_holds_what_the_ijb_metric_needs(ijbc):
    root, expected = ijbc
    dataset = build(dict(type='IJBDataset', data_root=str(root), target='IJBC'))
    assert len(dataset) == 12
    meta = dataset.metainfo
    assert meta['name'] == 'IJBC' and meta['num_pairs'] == 15
    for key in ('templates', 'medias', 'p1', 'p2', 'labels'):
        assert meta[key].tolist() == expected[key], key
    np.testing.assert_allclose(meta['detector_scores'], expected['detector_scores'], rtol=1e-6)
    np.testing.assert_allclose(dataset.landmarks, expected['landmarks'], atol=1e-3)
    assert sum(meta['labels']) == 3


def test_items_are_aligned_rgb_faces_in_the_verification_set_format(ijbc):
    root, expected = ijbc
    dataset = build(dict(type='IJBDataset', data_root=str(root), target='ijbc'))
    item = dataset[5]
    assert item['img'].shape == (112, 112, 3) and item['img'].dtype == np.uint8
    assert item['img_shape'] == (112, 112) and item['ori_shape'] == (220, 240)
    assert item['sample_idx'] == item['img_index'] == item['gt_label'] == 5
    assert item['img_path'] == str(root / 'loose_crop' / expected['names'][5])
    red, green, blue = (item['img'][:, :, c].mean() for c in range(3))
    assert red > green > blue  # RGB, like every kdzoo face dataset
    # alignment undoes the placement: the face comes back (up to resampling twice and the PNG round trip)
    inner = (slice(15, 97), slice(20, 92))
    error = np.abs(item['img'][inner].astype(float) - expected['aligned'][5][inner].astype(float)).mean()
    assert error < 4, error  # about 1 here; an unaligned crop is off by about 56
    assert dataset[-1]['sample_idx'] == 11


def test_items_pack_for_the_model(ijbc):
    root, _ = ijbc
    dataset = build(dict(type='IJBDataset', data_root=str(root), pipeline=[dict(type='mmpretrain.PackInputs')]))
    packed = dataset[3]
    assert tuple(packed['inputs'].shape) == (3, 112, 112)
    assert packed['data_samples'].sample_idx == 3


def test_landmarks_are_matched_to_images_by_name(tmp_path):
    expected = write_ijb_release(tmp_path / 'IJBB', 'IJBB', shuffle_landmark_file=True)
    dataset = build(dict(type='IJBDataset', data_root=str(tmp_path / 'IJBB'), target='IJBB'))
    np.testing.assert_allclose(dataset.metainfo['detector_scores'], expected['detector_scores'], rtol=1e-6)
    np.testing.assert_allclose(dataset.landmarks, expected['landmarks'], atol=1e-3)


def test_images_are_read_only_when_an_item_is_asked_for(ijbc):
    root, expected = ijbc
    for name in expected['names']:
        (root / 'loose_crop' / name).unlink()
    dataset = build(dict(type='IJBDataset', data_root=str(root)))  # the lists alone
    assert len(dataset) == 12
    with pytest.raises(FileNotFoundError, match=expected['names'][0]):
        dataset[0]


def test_missing_release_names_every_path_and_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        build(dict(type='IJBDataset', data_root=str(tmp_path / 'IJBB'), target='IJBB'))
    message = str(error.value)
    for path in ('loose_crop', 'meta/ijbb_face_tid_mid.txt', 'meta/ijbb_template_pair_label.txt',
                 'meta/ijbb_name_5pts_score.txt'):
        assert f'MISSING {tmp_path}/IJBB/{path}' in message
    assert IJB_LAYOUT in message
    with pytest.raises(ValueError, match='IJBB'):
        IJBDataset(data_root=str(tmp_path), target='IJBA')
    with pytest.raises(ValueError, match='multiple of 112'):
        IJBDataset(data_root=str(tmp_path), image_size=100)


# ---------------------------------------------------------------------------------------------- configs
def test_ms1mv2_test_sets_are_the_bin_sets_without_ijb_root(monkeypatch):
    monkeypatch.delenv('IJB_ROOT', raising=False)
    cfg = load_config(CAKD)
    assert [metric.prefix for metric in cfg.test_evaluator] == ['lfw', 'cfp_fp', 'agedb_30']
    assert [loader.dataset.type for loader in cfg.test_dataloader] == ['FaceVerificationBin'] * 3


@pytest.mark.parametrize('path', [CAKD, 'configs/face/swin_s-mbf_student.py'])
def test_ijb_root_adds_ijbb_and_ijbc_test_sets(path, tmp_path, monkeypatch):
    monkeypatch.setenv('IJB_ROOT', str(tmp_path))
    cfg = load_config(path)
    assert [metric.prefix for metric in cfg.test_evaluator] == ['lfw', 'cfp_fp', 'agedb_30', 'ijbb', 'ijbc']
    assert cfg.test_cfg.type == 'MultiSetTestLoop'
    for loader, metric, target in zip(cfg.test_dataloader[3:], cfg.test_evaluator[3:], ('IJBB', 'IJBC')):
        assert loader.dataset.type == 'IJBDataset' and loader.dataset.target == target
        assert loader.dataset.data_root == f'{tmp_path}/{target}'
        assert loader.sampler == dict(type='DefaultSampler', shuffle=False)
        # arcface_torch's defaults (docs §3): flip fusion, image norm kept, detector-score weighting
        assert metric.type == 'IJBMetric'
        assert (metric.normalize, metric.use_detector_score, metric.use_flip) == (False, True, True)
    assert len(cfg.val_dataloader) == len(cfg.val_evaluator) == 3  # validation during training is unchanged


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.filterwarnings('ignore::kdzoo.face.evaluation.verification.UndefinedMetricWarning')
def test_config_ijb_sets_run_through_the_multi_set_test_loop(tmp_path, monkeypatch):
    """The MS1MV2 config's IJB-B and IJB-C test sets (tiny releases) through MultiSetTestLoop with a tiny random
    face model: separate ijbb/ and ijbc/ results, equal to the protocol computed directly on the embeddings."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner

    releases = {target: write_ijb_release(tmp_path / 'IJB_release' / target, target) for target in ('IJBB', 'IJBC')}
    monkeypatch.setenv('IJB_ROOT', str(tmp_path / 'IJB_release'))
    cfg = load_config(CAKD)
    loaders = [dict(loader, batch_size=5, num_workers=0) for loader in cfg.test_dataloader[3:]]
    student = dict(type='FaceRecognizer', backbone=TINY_EMBEDDER, head=dict(type='ArcFaceHead', num_classes=5))
    model = DistillModel(student=student, input_size=(3, 112, 112), data_preprocessor=cfg.data_preprocessor)
    runner = Runner(model=model, work_dir=str(tmp_path / 'work'), test_dataloader=loaders,
                    test_evaluator=list(cfg.test_evaluator[3:]), test_cfg=cfg.test_cfg, default_scope='kdzoo')
    metrics = runner.test()

    far_keys = [f'tpr@far={format_rate(far)}' for far in IJB_FARS]
    assert set(metrics) == {f'{prefix}/{key}' for prefix in ('ijbb', 'ijbc') for key in far_keys + ['auc']}
    for prefix in ('ijbb', 'ijbc'):
        assert math.isfinite(metrics[f'{prefix}/tpr@far=1e-1']) and 0 <= metrics[f'{prefix}/auc'] <= 1

    dataset = runner.test_loop.sets[1][0].dataset
    batch = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]), False)
    with torch.no_grad():
        embeddings, flips = model.student.embed_with_flip(batch['inputs'])
    meta = dataset.metainfo
    direct = evaluate_ijb(embeddings.numpy(), meta['templates'], meta['medias'], meta['p1'], meta['p2'],
                          meta['labels'], img_feats_flip=flips.numpy(), detector_scores=meta['detector_scores'])
    assert metrics['ijbc/auc'] == pytest.approx(direct.auc)
    assert metrics['ijbc/tpr@far=1e-1'] == pytest.approx(direct.tpr_at_far[1e-1])
    assert releases['IJBC']['labels'] == meta['labels'].tolist()
