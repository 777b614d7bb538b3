"""The face-recognition configs (configs/face) and the glue that runs face models in DistillModel.

* Every config under configs/face builds (random weights, teacher checkpoints replaced by None) and runs one
  training forward on a batch of 2 made by its own train pipeline and data preprocessor at its input size;
  the losses (margin-softmax + every distiller's) are finite, and prediction gives flipped embeddings. A
  distiller or adapter type a config names that is not registered fails the test.
* The MS1MV2 config's datasets raise the documented missing-data error; its data root follows MS1MV2_ROOT.
* The ORL student quick start trains a few iterations and evaluates verification end to end through
  tools/train.py.
* DistillModel: flip test, the face task loss and its weight, Partial FC centres kept out of DDP (2 processes).


"""
import contextlib
import glob
import os.path as osp
import tempfile

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

import kdzoo  # noqa: F401  (registers everything)
from kdzoo.models import DistillModel
from kdzoo.registry import ADAPTERS, DATASETS, DISTILLERS, MODELS
from run_helpers import ROOT, run_tool

FACE_CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', 'face', '*.py')))
EXPECTED = {'cakd_urfm_apt.py', 'swin_s-mbf_student.py', 'swin_s-mbf_kd.py', 'swin_s-mbf_fitnet.py',
            'iresnet50-mbf_urfm_apt.py', 'orl_teacher.py', 'orl_student.py', 'orl_urfm_apt.py', 'orl_kd.py',
            'orl_fitnet.py'}
BATCH = 2
MS1MV2 = 'configs/_base_/datasets/ms1mv2.py'
# Teacher-training configs of the MS1MV2 pairs: built, but their forward (a Swin-S / IResNet-50 with grad) is
# skipped to keep this file fast; the same networks run forward as teachers in the distillation configs.
BUILD_ONLY = {'configs/face/swin_s_teacher.py', 'configs/face/iresnet50_teacher.py'}
ORL_METRICS = ('orl/acc', 'orl/tpr@fpr=1e-2', 'orl/auc')


def load(path):
    cfg = Config.fromfile(osp.join(ROOT, path))  # also imports the config's custom_imports
    if cfg.get('face_data'):  # configs/face/custom_*.py: num_classes='auto' comes from <data_root>/property
        from kdzoo.face.datasets import write_property
        from kdzoo.face.datasets.custom_config import resolve_face_data
        with tempfile.TemporaryDirectory() as root:
            write_property(osp.join(root, 'property'), 5, 112, 112)
            cfg.face_data.data_root = root
            resolve_face_data(cfg)
    return cfg


def missing_components(cfg):
    """Distiller / adapter types of the config that are not registered."""
    missing = [f"distiller {d['type']!r}" for d in cfg.model.get('distillers', []) if DISTILLERS.get(d['type']) is None]
    missing += [f"adapter {a['type']!r}" for a in cfg.model.get('adapters', []) if ADAPTERS.get(a['type']) is None]
    return missing


@contextlib.contextmanager
def quick_random_init():
    """Plain normal draws instead of the truncated normal of timm / torch (slow for Swin-S's 50M weights)."""
    import timm.layers
    import timm.layers.weight_init as weight_init
    import timm.models.swin_transformer as swin

    def normal_(tensor, mean=0., std=1., a=-2., b=2.):
        with torch.no_grad():
            return tensor.normal_(mean, std)

    patched = [(timm.layers, 'trunc_normal_'), (weight_init, 'trunc_normal_'), (swin, 'trunc_normal_'),
               (torch.nn.init, 'trunc_normal_')]
    import kdzoo.face.models.face_swin as face_swin
    import kdzoo.face.models.face_vit as face_vit
    patched += [(m, 'trunc_normal_') for m in (face_swin, face_vit) if hasattr(m, 'trunc_normal_')]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patched if hasattr(owner, name)]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, normal_)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def fake_item(cfg, index):
    """What a face dataset hands the pipeline: ORL's 92x112 grey faces as RGB, else aligned 112x112 RGB."""
    orl = cfg.train_dataloader.dataset.type == 'ORLFaces'
    shape = (112, 92, 3) if orl else (112, 112, 3)
    img = np.random.default_rng(index).integers(0, 256, shape, dtype=np.uint8)
    return dict(img=img, gt_label=index, sample_idx=index, ori_shape=shape[:2], img_shape=shape[:2])


def train_batch(cfg, model):
    with DefaultScope.overwrite_default_scope('kdzoo'):
        pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    batch = pseudo_collate([pipeline(fake_item(cfg, i)) for i in range(BATCH)])
    return model.data_preprocessor(batch, True)


def no_checkpoints(model_cfg):
    for teacher in model_cfg.get('teachers', {}).values():
        teacher['checkpoint'] = None
    return model_cfg


SMALL_MFN = dict(type='mobilefacenet', blocks=(1, 1, 1, 1))
# A tiny CNN as embedding backbone (16-d "embedding"): the metric plumbing only needs some embedder.
TINY_EMBEDDER = dict(type='ImportedModel', path='tiny_models:TinyConvNet', in_chans=3, num_classes=16, width=4)


def face_model(backbone=SMALL_MFN, **kwargs):
    student = dict(type='FaceRecognizer', backbone=backbone, head=dict(type='ArcFaceHead', num_classes=5))
    return DistillModel(student=student, input_size=(3, 112, 112), **kwargs)


def samples_of(labels):
    from mmpretrain.structures import DataSample
    return [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(y) for i, y in enumerate(labels)]


# ---------------------------------------------------------------------------------------------- configs
def test_face_configs_are_collected():
    assert EXPECTED <= {osp.basename(p) for p in FACE_CONFIGS}


# Configs that build a face Swin-S (50 M weights) take more than 3 s: slow tier.
HEAVY_CONFIGS = {'swin_s-mbf_fitnet.py', 'swin_s-mbf_kd.py', 'cakd_urfm_apt.py'}


@pytest.mark.parametrize('path', [pytest.param(p, marks=pytest.mark.slow) if osp.basename(p) in HEAVY_CONFIGS else p
                                  for p in FACE_CONFIGS])
def test_config_builds_and_runs(path):
    cfg = load(path)
    missing = missing_components(cfg)
    assert not missing, (f"{path} names {', '.join(missing)}, not registered: register it (``import kdzoo`` "
                         "must import its module) or fix the config's ``type``")
    model_cfg = no_checkpoints(cfg.model)
    with DefaultScope.overwrite_default_scope('kdzoo'), quick_random_init():
        model = MODELS.build(model_cfg)
    assert model.input_size == (3, 112, 112)
    assert type(model.student).__name__ == 'FaceRecognizer' and model.student.head is not None
    if path in BUILD_ONLY:
        return
    data = train_batch(cfg, model)
    assert data['inputs'].shape == (BATCH, *model.input_size)

    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    head_loss = model.student.head.loss_name
    assert head_loss in losses
    for distiller in cfg.model.get('distillers', []):
        assert len(losses) > 1, f"{distiller['type']} returned no loss"
    for name, value in losses.items():
        assert torch.isfinite(value).all(), f'{path}: {name} = {value}'

    model.eval()
    with torch.no_grad():
        samples = model.predict(data['inputs'], data['data_samples'])
    assert samples[0].pred_embedding.shape == (model.student.embedding_size,)
    assert samples[0].pred_embedding_flip.shape == (model.student.embedding_size,)


def test_urfm_apt_configs_use_the_documented_pairs():
    cakd, ir50 = load('configs/face/cakd_urfm_apt.py'), load('configs/face/iresnet50-mbf_urfm_apt.py')
    for cfg in (cakd, ir50):
        assert cfg.model.student.backbone.type == 'mobilefacenet'
        assert cfg.model.student.head == dict(type='ArcFaceHead', num_classes=85742, s=64.0, m=0.5)
        assert [d['type'] for d in cfg.model.distillers] == ['urfm']
    assert cakd.model.teachers.swin.model.backbone.type == 'face_swin_s'
    assert [a['type'] for a in cakd.model.adapters] == ['apt']
    assert ir50.model.teachers.ir50.model.backbone.type == 'iresnet50'
    assert not ir50.model.get('adapters')  # no prompts on a CNN
    orl = load('configs/face/orl_urfm_apt.py')
    assert orl.teacher_configs == dict(swin='configs/face/orl_teacher.py')
    # the distillation quick starts load the teacher that orl_teacher.py trains, strictly: same model dict
    assert orl.model.teachers.swin.model == load('configs/face/orl_teacher.py').model.student


def test_schedule_is_the_standard_face_recipe():
    cfg = load('configs/face/swin_s-mbf_student.py')
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)
    assert cfg.train_cfg.max_epochs == 20 and cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 1024
    [poly] = cfg.param_scheduler
    assert poly.type == 'PolyLR' and poly.power == 1.0 and poly.eta_min == 0.0 and poly.end == 20


# ---------------------------------------------------------------------------------------------- MS1MV2 data
def test_ms1mv2_datasets_raise_the_documented_missing_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv('MS1MV2_ROOT', str(tmp_path / 'faces_emore'))
    cfg = load(MS1MV2)
    datasets = [cfg.train_dataloader.dataset] + [loader.dataset for loader in cfg.val_dataloader]
    assert [d.get('path') for d in datasets[1:]] == ['lfw.bin', 'cfp_fp.bin', 'agedb_30.bin']
    assert [metric.prefix for metric in cfg.val_evaluator] == ['lfw', 'cfp_fp', 'agedb_30']
    for dataset_cfg in datasets:
        assert dataset_cfg.data_root == str(tmp_path / 'faces_emore')
        with DefaultScope.overwrite_default_scope('kdzoo'), pytest.raises(FileNotFoundError) as error:
            DATASETS.build(dataset_cfg)
        message = str(error.value)
        assert 'data not found. Looked for:' in message and 'Expected layout' in message
        assert 'configs/face/orl_' in message  # the offline quick start
    train_message = str(pytest.raises(FileNotFoundError, DATASETS.build, cfg.train_dataloader.dataset).value)
    for name in ('train.rec', 'train.idx', 'property'):
        assert f'MISSING {tmp_path}/faces_emore/{name}' in train_message


@pytest.mark.filterwarnings('ignore::kdzoo.face.evaluation.verification.UndefinedMetricWarning')
def test_multi_set_loop_scores_each_verification_set(tmp_path):
    """The MS1MV2 config's validation (MultiSetValLoop, one prefixed FaceVerificationMetric per .bin) on two small
    .bin files: one result per set, with flip fusion."""
    from mmengine.runner import Runner

    from kdzoo.face.datasets import encode_image, write_verification_bin
    rng = np.random.default_rng(0)
    sets = {'lfw': 4, 'agedb_30': 6}
    for name, pairs in sets.items():
        images = [encode_image(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), '.png')
                  for _ in range(2 * pairs)]
        write_verification_bin(str(tmp_path / f'{name}.bin'), images, [bool(i % 2) for i in range(pairs)])
    cfg = load(MS1MV2)
    loaders = [dict(cfg.val_dataloader[0], batch_size=8, num_workers=0,
                    dataset=dict(cfg.val_dataloader[0].dataset, data_root=str(tmp_path), path=f'{name}.bin'))
               for name in sets]
    evaluators = [dict(cfg.val_evaluator[0], prefix=name, n_folds=2) for name in sets]
    model = face_model(TINY_EMBEDDER, data_preprocessor=cfg.data_preprocessor)
    runner = Runner(model=model, work_dir=str(tmp_path / 'work'),
                    val_dataloader=loaders, val_evaluator=evaluators, val_cfg=cfg.val_cfg,
                    test_dataloader=loaders, test_evaluator=evaluators, test_cfg=cfg.test_cfg, default_scope='kdzoo')
    metrics = runner.val()
    for name in sets:
        assert {f'{name}/acc', f'{name}/auc', f'{name}/tpr@fpr=1e-2', f'{name}/val@far=1e-3'} <= set(metrics)
    assert runner.val_loop.dataloader is runner.val_loop.sets[0][0]
    assert len(runner.val_loop.sets[1][0].dataset) == 12
    tested = runner.test()  # the same sets and weights through MultiSetTestLoop
    assert set(tested) == set(metrics)
    for key, value in metrics.items():
        np.testing.assert_equal(tested[key], value)  # nan (too few impostor pairs for 1e-2) equals nan


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_orl_student_quick_start_trains_and_evaluates(tmp_path):
    """tools/train.py on configs/face/orl_student.py, shrunk to 3 iterations of 4 faces: the verification
    metrics of the 10 held-out identities (with flip fusion) reach the log."""
    code, log = run_tool('tools/train.py', 'configs/face/orl_student.py', '--work-dir', str(tmp_path),
                         '--cfg-options', 'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=12',
                         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.logger.interval=1',
                         timeout=300)
    assert code == 0, log[-3000:]
    assert 'Epoch(train) [1][3/3]' in log and 'loss_arcface' in log
    assert 'flip fusion=True' in log and '4950 pairs' in log
    for metric in ORL_METRICS:
        assert f'{metric}: ' in log, metric
    assert 'kdzoo summary: ' in log and 'student orl/auc' in log


@pytest.mark.slow
@pytest.mark.parametrize('config, loss_name', [('orl_urfm_apt.py', 'loss_urfm_feat'), ('orl_kd.py', 'loss_kd')])
def test_orl_distillation_quick_start_trains(config, loss_name, tmp_path):
    """URFM + APT and face_kd end to end: tools/train.py on the ORL quick start, a random-weight teacher, 3
    iterations of 4 faces; the distillation loss is logged and the student is evaluated."""
    from run_helpers import random_weights
    teacher = random_weights(Config.fromfile(osp.join(ROOT, 'configs/face/_base_/orl.py')).orl_teacher,
                             str(tmp_path / 'teacher.safetensors'))
    code, log = run_tool('tools/train.py', f'configs/face/{config}', '--work-dir', str(tmp_path / 'run'),
                         '--cfg-options', f'model.teachers.swin.checkpoint={teacher}', 'train_dataloader.batch_size=4',
                         'train_dataloader.dataset.indices=12', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                         'default_hooks.logger.interval=1', timeout=300)
    assert code == 0, log[-3000:]
    assert 'Epoch(train) [1][3/3]' in log and loss_name in log
    assert 'kdzoo summary: ' in log and 'student orl/auc' in log


# ---------------------------------------------------------------------------------------------- DistillModel glue
def test_predict_writes_flipped_embeddings_for_a_face_recognizer():
    model = face_model().eval()
    faces = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        samples = model.predict(faces, samples_of([0, 1]))
        torch.testing.assert_close(samples[1].pred_embedding, model.student(faces)[1])
        torch.testing.assert_close(samples[1].pred_embedding_flip, model.student(faces.flip(3))[1])
        assert samples[1].sample_idx == 1  # what FaceVerificationMetric orders the embeddings by
        plain = face_model(flip_test=False).eval().predict(faces, samples_of([0, 1]))
    assert 'pred_embedding' in plain[0] and 'pred_embedding_flip' not in plain[0]


def test_predict_of_a_classifier_is_unchanged():
    model = DistillModel(student=dict(type='ImportedModel', path='tiny_models:TinyConvNet', in_chans=3),
                         input_size=(3, 16, 16)).eval()
    with torch.no_grad():
        [sample] = model.predict(torch.randn(1, 3, 16, 16))
    assert sample.pred_score.shape == (10,) and 'pred_embedding_flip' not in sample


def test_face_task_loss_is_the_margin_loss_weighted_by_task_loss_weight():
    torch.manual_seed(0)
    faces, samples = torch.randn(2, 3, 112, 112), samples_of([3, 1])
    model = face_model().train()
    state = model.state_dict()
    full = model.loss(faces, samples)
    assert list(full) == ['loss_arcface']
    half = face_model(task_loss_weight=0.5)
    half.load_state_dict(state)
    torch.testing.assert_close(half.train().loss(faces, samples)['loss_arcface'], 0.5 * full['loss_arcface'])
    assert face_model(task_loss_weight=0).train().loss(faces, samples) == {}


def _ddp_worker(rank, world_size, init_file, out_dir):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        import kdzoo  # noqa: F401
        from kdzoo.engine import DistillDataParallel
        from kdzoo.models import DistillModel as Model
        face = dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet', blocks=(1, 1, 1, 1)),
                    head=dict(type='PartialFC', num_classes=11))
        model = Model(student=face, teachers=dict(t=dict(model=face)), input_size=(3, 112, 112))
        # Shards of 6 and 5 centres: DDP's cross-rank shape check passes only because they are excluded.
        DistillDataParallel(model, device_ids=None)
        torch.save(dict(ignored=model._ddp_params_and_buffers_to_ignore,
                        shard=model.student.head.weight.shape[0]), osp.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.dist
def test_partial_fc_centres_are_kept_out_of_ddp_by_distill_model(tmp_path):
    mp.spawn(_ddp_worker, nprocs=2, join=True, args=(2, str(tmp_path / 'init'), str(tmp_path)))
    for rank, shard in ((0, 6), (1, 5)):
        out = torch.load(tmp_path / f'rank{rank}.pt')
        assert sorted(out['ignored']) == ['student.head.weight', 'teachers.t.head.weight']
        assert out['shard'] == shard


def test_a_single_process_excludes_nothing():
    model = DistillModel(student=dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet', blocks=(1, 1, 1, 1)),
                                      head=dict(type='PartialFC', num_classes=11)), input_size=(3, 112, 112))
    assert model.ddp_ignored_parameters == []
    assert not hasattr(model, '_ddp_params_and_buffers_to_ignore')


# ---------------------------------------------------------------------------------------------- face KD
def test_face_kd_compares_identity_logits_of_the_two_heads():
    import torch.nn.functional as F

    from kdzoo.face.methods.face_kd.distiller import FaceKD  # noqa: F401  (registers face_kd)
    from kdzoo.methods.kd.distiller import kd_loss
    head = dict(type='ArcFaceHead', num_classes=5, s=64.0, m=0.5)
    student = dict(type='FaceRecognizer', backbone=SMALL_MFN, head=head)
    teacher = dict(type='FaceRecognizer', backbone=TINY_EMBEDDER, head=dict(head, embed_dim=16))
    model = DistillModel(student=student, teachers=dict(t=dict(model=teacher)), input_size=(3, 112, 112),
                         distillers=[dict(type='face_kd', temperature=4.0)], task_loss_weight=0).train()
    faces = torch.randn(3, 3, 112, 112)
    losses = model.loss(faces, samples_of([0, 1, 2]))
    assert list(losses) == ['loss_kd']
    with torch.no_grad():
        z_t = 64 * F.linear(F.normalize(model.teachers.t(faces)), F.normalize(model.teachers.t.head.weight))
    z_s = 64 * F.linear(F.normalize(model.student(faces)), F.normalize(model.student.head.weight))
    torch.testing.assert_close(losses['loss_kd'], kd_loss(z_s, z_t, 4.0), rtol=1e-4, atol=1e-5)
    losses['loss_kd'].backward()
    assert model.student.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teachers.parameters())

    other = dict(teacher, head=dict(head, num_classes=7))
    with pytest.raises(ValueError, match='same identities'):
        DistillModel(student=student, teachers=dict(t=dict(model=other)), input_size=(3, 112, 112),
                     distillers=[dict(type='face_kd')])
