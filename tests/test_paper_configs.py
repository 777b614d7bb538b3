"""The paper configs under configs/cifar100 and configs/imagenet: every one loads, builds and runs.

Every ``*.py`` below those folders except the ``_base_`` fragments is collected (configs other authors add there
get the generic checks and the build). Each config is checked twice:

* ``test_config_is_well_formed`` (cheap): model type, dataset and transform types resolve in kdzoo's registries.
  For the FOFA-table configs (``<pair>_<method>.py``) also the teacher / student architectures, the teacher
  checkpoint placeholder, the distiller types, the recipe, and the header numbers against FOFA Tables 1 and 2
  (read from docs/methods/fofa.md, 'Paper numbers'; a missing table or row fails).
* ``test_config_builds_and_runs``: the config's model is built with random weights (teacher checkpoint replaced
  by None) at its real 224×224 input, the config's own train pipeline and data preprocessor turn two random
  images into a batch (mixup / cutmix included for the ViT recipes), and one forward computes the CE and every
  distiller's losses, which must be finite. Configs whose models differ only in their distillers are built as one
  model carrying all their distillers (one teacher / student initialisation and one forward per pair, not per
  config); each distiller is built and run exactly as in its own config and its losses are attributed to it.
  Weights are drawn with a plain normal instead of timm's slow truncated normal (``quick_random_init``).

Per recipe (4): the LR of every epoch against timm's schedule, weight decay on 1-D parameters, EMA, the train and
eval pipelines, mixup labels, and the error a missing data folder raises. Also the teacher conversion script of
configs/README.md.

Every distiller type a config names must be registered: a lost registration fails its configs' tests.
The build tests are in the slow tier (``pytest -m slow``); the cheap checks run in the default tier.
"""
import contextlib
import copy
import functools
import glob
import json
import math
import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

import kdzoo  # noqa: F401  (registers everything)
from kdzoo.tasks import stack_labels
from kdzoo.registry import DATASETS, DISTILLERS, HOOKS, MODELS, TRANSFORMS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIRS = ('configs/cifar100', 'configs/imagenet')
PAPER_TABLES = osp.join(ROOT, 'docs', 'methods', 'fofa.md')
BATCH = 2


def collect_configs():
    paths = []
    for folder in CONFIG_DIRS:
        for path in glob.glob(osp.join(ROOT, folder, '**', '*.py'), recursive=True):
            if '_base_' not in osp.relpath(path, ROOT).split(os.sep):
                paths.append(osp.relpath(path, ROOT))
    return sorted(paths)


CONFIGS = collect_configs()

# ------------------------------------------------------------------------------------------ the FOFA tables
METHOD_TYPES = {'kd': 'kd', 'dkd': 'dkd', 'fitnet': 'fitnet', 'ofa': 'ofa', 'dist': 'dist', 'rkd': 'rkd',
                'fofa': 'fofa'}
METHOD_COLUMNS = {'kd': 'KD', 'dkd': 'DKD', 'fitnet': 'FitNet', 'ofa': 'OFA', 'dist': 'DIST', 'rkd': 'RKD',
                  'fofa': 'FOFA'}
TEACHERS = {'swin_t': 'swin_tiny_patch4_window7_224', 'vit_s': 'vit_small_patch16_224',
            'mixer_b16': 'mixer_b16_224', 'convnext_t': 'convnext_tiny'}
STUDENTS = {'resnet18': ('resnet18', 'cnn'), 'mobilenetv2': ('mobilenetv2_100', 'cnn'),
            'deit_t': ('deit_tiny_patch16_224', 'vit'), 'swin_p': ('swin_tiny_patch4_window7_224', 'vit'),
            'resmlp_s12': ('resmlp_12_224', 'vit')}
TIMM_CLASSES = {'swin_tiny_patch4_window7_224': 'SwinTransformer', 'vit_small_patch16_224': 'VisionTransformer',
                'mixer_b16_224': 'MlpMixer', 'convnext_tiny': 'ConvNeXt', 'resnet18': 'ResNet',
                'mobilenetv2_100': 'EfficientNet', 'deit_tiny_patch16_224': 'VisionTransformer',
                'resmlp_12_224': 'MlpMixer', 'resnet50': 'ResNet', 'vit_base_patch16_224': 'VisionTransformer',
                'deit_small_patch16_224': 'VisionTransformer', 'regnety_006': 'RegNet', 'regnety_040': 'RegNet'}
# Row labels of FOFA Table 1 (CIFAR-100) and Table 2 (ImageNet-1K), as docs/methods/fofa.md writes them.
TABLE_ROWS = {
    'cifar100': {'swin_t-resnet18': 'Swin-T → ResNet18', 'vit_s-resnet18': 'ViT-S → ResNet18',
                 'mixer_b16-resnet18': 'Mixer-B/16 → ResNet18', 'swin_t-mobilenetv2': 'Swin-T → MobileNetV2',
                 'convnext_t-deit_t': 'ConvNeXt-T → DeiT-T', 'convnext_t-swin_p': 'ConvNeXt-T → Swin-P',
                 'convnext_t-resmlp_s12': 'ConvNeXt-T → ResMLP-S12'},
    'imagenet': {'swin_t-resnet18': 'Swin-T → ResNet18', 'mixer_b16-mobilenetv2': 'Mixer-B/16 → MobileNetV2',
                 'convnext_t-deit_t': 'ConvNeXt-T → DeiT-T', 'swin_t-resmlp_s12': 'Swin-T → ResMLP-S12'},
}
TABLE_SECTIONS = {'cifar100': '(FOFA Table 1)', 'imagenet': '(FOFA Table 2)'}   # in the '### ' headings
# Recipes of the OFA code (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'): optimizer, base LR, warm-up epochs and LR, LR at the last epoch (approx.), epochs.
RECIPES = {
    ('cifar100', 'cnn'): dict(optimizer='SGD', lr=0.05, warmup=3, warmup_lr=1e-4, final_lr=1e-3, epochs=300,
                              weight_decay=2e-3, clip=None, mixup=False),
    ('cifar100', 'vit'): dict(optimizer='AdamW', lr=5e-4, warmup=20, warmup_lr=5e-7, final_lr=1e-5, epochs=300,
                              weight_decay=0.05, clip=5.0, mixup=True),
    ('imagenet', 'cnn'): dict(optimizer='SGD', lr=0.1, warmup=3, warmup_lr=1e-4, final_lr=1e-4, epochs=100,
                              weight_decay=1e-4, clip=None, mixup=False),
    ('imagenet', 'vit'): dict(optimizer='AdamW', lr=5e-4, warmup=20, warmup_lr=5e-7, final_lr=1e-6, epochs=300,
                              weight_decay=0.05, clip=5.0, mixup=True),
}


def timm_lr(recipe, epoch):
    """timm 0.6.5's per-epoch LR for a recipe of RECIPES: linear warm-up, then cosine over all epochs or x0.1 every 30."""
    if epoch < recipe['warmup']:
        return recipe['warmup_lr'] + epoch * (recipe['lr'] - recipe['warmup_lr']) / recipe['warmup']
    if recipe['optimizer'] == 'SGD' and recipe['epochs'] == 100:
        return recipe['lr'] * 0.1 ** (epoch // 30)
    cosine = 0.5 * (1 + math.cos(math.pi * epoch / recipe['epochs']))
    return recipe['final_lr'] + (recipe['lr'] - recipe['final_lr']) * cosine


def parse_name(path):
    """(dataset, pair, method) for a ``<teacher>-<student>_<method>.py`` config of the FOFA tables, else None."""
    dataset = path.split(os.sep)[1]
    match = re.fullmatch(r'([a-z0-9_]+)-([a-z0-9_]+)_([a-z]+)\.py', osp.basename(path))
    if not match or dataset not in TABLE_ROWS:
        return None
    teacher, student, method = match.groups()
    pair = f'{teacher}-{student}'
    if pair not in TABLE_ROWS[dataset] or (method not in METHOD_TYPES and method != 'student'):
        return None
    return dataset, pair, method


def unregistered(types):
    return sorted(t for t in types if DISTILLERS.get(t) is None)


def unregistered_error(path, missing):
    return LookupError(f"{path} names distiller type(s) {missing} that are not registered: register the "
                       f"distiller (``@DISTILLERS.register_module()``, imported by ``import kdzoo``) or fix the "
                       f"config's ``type``")


@functools.lru_cache(maxsize=None)
def load(path):
    return Config.fromfile(osp.join(ROOT, path))


@functools.lru_cache(maxsize=None)
def spec_tables():
    """{dataset: {row label: {column: value}}} parsed from FOFA Tables 1 and 2 in docs/methods/fofa.md."""
    text = open(PAPER_TABLES, encoding='utf-8').read()
    tables = {}
    for dataset, heading in TABLE_SECTIONS.items():
        headings = [h for h in text.split('\n### ')[1:] if heading in h.splitlines()[0]]
        assert len(headings) == 1, f"{PAPER_TABLES} needs one '### ...{heading}' section with the table"
        section = headings[0]
        rows = [[cell.strip() for cell in line.strip().strip('|').split('|')]
                for line in section.splitlines() if line.startswith('|')]
        header, body = rows[0], rows[2:]
        tables[dataset] = {row[0]: dict(zip(header[1:], row[1:])) for row in body}
    return tables


def header_comment(path):
    lines = open(osp.join(ROOT, path), encoding='utf-8').read().splitlines()
    head = []
    for line in lines:
        if not line.startswith('#'):
            break
        head.append(line)
    return '\n'.join(head)


# ------------------------------------------------------------------------------------------ shared helpers
def recipe_key(cfg, dataset):
    family = 'vit' if cfg.optim_wrapper.optimizer.type == 'AdamW' else 'cnn'
    return dataset, family


def no_checkpoints(model_cfg):
    """The model config with every teacher checkpoint replaced by None (random weights, nothing to load)."""
    model_cfg = copy.deepcopy(model_cfg)
    for teacher in (model_cfg.get('teachers') or {}).values():
        if isinstance(teacher, dict) and 'checkpoint' in teacher:
            teacher['checkpoint'] = None
    return model_cfg


def group_key(cfg):
    """Configs whose models differ only in their distillers share one built model."""
    model_cfg = no_checkpoints(cfg.model.to_dict())
    model_cfg.pop('distillers', None)
    pipeline = cfg.train_dataloader.dataset.pipeline
    return json.dumps([model_cfg, pipeline], sort_keys=True, default=str)


def fake_image(dataset, index):
    rng = np.random.default_rng(index)
    size = (32, 32) if dataset == 'cifar100' else (300, 400)
    return rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)


def train_batch(cfg, tmp_dir):
    """The config's train pipeline on BATCH random images (32×32 for CIFAR; JPEG files for ImageNet-style)."""
    with DefaultScope.overwrite_default_scope('kdzoo'):   # the Runner's scope (configs set default_scope)
        pipeline = Compose(copy.deepcopy(cfg.train_dataloader.dataset.pipeline))
    loads_files = any('LoadImageFromFile' in str(t.get('type')) for t in cfg.train_dataloader.dataset.pipeline)
    dataset = 'cifar100' if not loads_files else 'imagenet'
    samples = []
    for index in range(BATCH):
        image = fake_image(dataset, index)
        if loads_files:
            import mmcv
            path = osp.join(tmp_dir, f'{index}.jpg')
            mmcv.imwrite(image, path)
            sample = dict(img_path=path, gt_label=index)
        else:
            sample = dict(img=image, gt_label=index)
        samples.append(pipeline(sample))
    return dict(inputs=[s['inputs'] for s in samples], data_samples=[s['data_samples'] for s in samples])


@contextlib.contextmanager
def quick_random_init():
    """timm's truncated-normal init draws every weight in five passes (uniform, erfinv, mul, add, clamp), which is
    most of the time it takes to build Swin-T / ConvNeXt-T / ViT-S on a CPU. While the test builds, draw a plain
    normal of the same mean and std instead: the values only need to be random and finite."""
    import timm.layers.weight_init as weight_init
    original = weight_init._trunc_normal_
    weight_init._trunc_normal_ = lambda tensor, mean, std, a, b: tensor.normal_(mean, std)
    try:
        yield
    finally:
        weight_init._trunc_normal_ = original


def run_once(cfg, model_cfg):
    """Build ``model_cfg`` and run one training forward on a batch made by ``cfg``'s pipeline and preprocessor."""
    import tempfile
    with quick_random_init():
        model = MODELS.build(model_cfg)
    with tempfile.TemporaryDirectory() as tmp_dir:
        data = model.data_preprocessor(train_batch(cfg, tmp_dir), True)
    inputs, data_samples = data['inputs'], data['data_samples']
    model.train()
    with torch.no_grad():
        labels, soft_labels = stack_labels(data_samples)
        teacher_features = model.run_teachers(inputs)
        output, student_features = model._record('student', model.student, inputs)
        task = model.task_loss(output, labels, soft_labels)
        losses = [distiller(student_features, teacher_features, labels, inputs) for distiller in model.distillers]
    return dict(model=model, output=output, task=task, losses=losses)


@functools.lru_cache(maxsize=None)
def built_group(key):
    """{path: result} for the configs of one group, built as one model carrying all their distillers.

    A result is ``dict(model, output, task, losses, indices)`` (``indices``: the config's distillers in the
    model) or ``dict(error=exception)`` (an unregistered distiller type is an error too).
    If the joint model does not build or run, each config is built alone, so an error lands on its own config.
    """
    paths = [p for p in CONFIGS if group_key(load(p)) == key]
    cfg = load(paths[0])
    results, distillers, indices = {}, [], {}
    for path in paths:
        own = load(path).model.get('distillers') or []
        missing = unregistered([d['type'] for d in own])
        if missing:
            results[path] = dict(error=unregistered_error(path, missing))
            continue
        indices[path] = list(range(len(distillers), len(distillers) + len(own)))
        distillers += [copy.deepcopy(d) for d in own]
    model_cfg = no_checkpoints(cfg.model.to_dict())
    try:
        joint = run_once(cfg, dict(model_cfg, distillers=distillers))
        results.update({path: dict(joint, indices=own) for path, own in indices.items()})
    except Exception:   # noqa: BLE001  (rebuilt one by one below, so the error is reported per config)
        for path in indices:
            own = load(path)
            try:
                alone = run_once(own, no_checkpoints(own.model.to_dict()))
                results[path] = dict(alone, indices=list(range(len(own.model.get('distillers') or []))))
            except Exception as error:   # noqa: BLE001
                results[path] = dict(error=error)
    return results


# ------------------------------------------------------------------------------------------ cheap checks
def test_configs_are_collected():
    names = {osp.basename(p) for p in CONFIGS}
    expected = {f'{pair}_{m}.py' for rows in TABLE_ROWS.values() for pair in rows
                for m in list(METHOD_TYPES) + ['student']}
    assert not any('_base_' in p for p in CONFIGS)
    assert expected <= names, f"missing paper configs: {sorted(expected - names)}"
    assert len([p for p in CONFIGS if parse_name(p)]) == 7 * 8 + 4 * 8   # 7 methods + the student alone


@pytest.mark.parametrize('path', CONFIGS)
def test_config_is_well_formed(path):
    cfg = load(path)
    assert cfg.default_scope == 'kdzoo'
    assert cfg.model.type == 'DistillModel'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset_cfg = cfg[loader].dataset
        assert DATASETS.get(dataset_cfg.type) is not None, f"{loader}.dataset.type {dataset_cfg.type!r}"
        for transform in dataset_cfg.pipeline:
            assert TRANSFORMS.get(transform['type']) is not None, transform['type']
    for hook in cfg.get('custom_hooks', []):
        assert HOOKS.get(hook['type']) is not None, hook['type']
    missing = unregistered([d['type'] for d in cfg.model.get('distillers') or []])
    assert not missing, str(unregistered_error(path, missing))

    parsed = parse_name(path)
    if parsed is None:
        return   # a config of another method (FOFA, CAKD, CivT, ...): the generic checks above and the build
    dataset, pair, method = parsed
    teacher, student = pair.split('-')
    student_name, family = STUDENTS[student]
    assert tuple(cfg.model.input_size) == (3, 224, 224) and cfg.model.label_smoothing == 0.1
    assert 'TeacherEvalHook' in {h['type'] for h in cfg.custom_hooks}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == f'data/{dataset}'
    assert cfg.model.student.model_name == student_name
    assert cfg.model.student.num_classes == (100 if dataset == 'cifar100' else 1000)
    if student == 'swin_p':   # docs/methods/conventions.md, 'Stages of heterogeneous pairs': patch 4, window 7, depths (2,2,2,2), heads (2,4,8,16), embed 48
        assert cfg.model.student.embed_dim == 48 and tuple(cfg.model.student.depths) == (2, 2, 2, 2)
        assert tuple(cfg.model.student.num_heads) == (2, 4, 8, 16)
    if method == 'student':
        assert cfg.model.teachers is None and list(cfg.model.distillers) == []
    else:
        assert list(cfg.model.teachers) == [teacher]
        assert cfg.model.teachers[teacher].model.model_name == TEACHERS[teacher]
        assert cfg.model.teachers[teacher].checkpoint == f'checkpoints/{dataset}/{teacher}.pth'
        assert [d['type'] for d in cfg.model.distillers] == [METHOD_TYPES[method]]
    assert recipe_key(cfg, dataset) == (dataset, family)
    recipe = RECIPES[(dataset, family)]
    assert cfg.optim_wrapper.optimizer.type == recipe['optimizer']
    assert cfg.optim_wrapper.optimizer.lr == recipe['lr']
    assert cfg.optim_wrapper.optimizer.weight_decay == recipe['weight_decay']
    assert cfg.optim_wrapper.get('clip_grad', {}).get('max_norm') == recipe['clip']
    assert cfg.train_cfg.max_epochs == recipe['epochs']
    assert bool(cfg.model.data_preprocessor.get('batch_augments')) == recipe['mixup']

    header = header_comment(path)
    row = spec_tables()[dataset][TABLE_ROWS[dataset][pair]]
    expected = {'student from scratch': row['S'], 'teacher': row['T']}
    if method != 'student':
        expected[METHOD_COLUMNS[method]] = row[METHOD_COLUMNS[method]]
    for label, value in expected.items():
        assert f'{label} {value}' in header, f"header of {path} lacks '{label} {value}' (docs/methods/fofa.md, 'Paper numbers')"
    assert set(re.findall(r'\d+\.\d\d', header)) == set(expected.values()), "a header number not from FOFA's tables"


@functools.lru_cache(maxsize=None)
def recipe_configs():
    """One config per (dataset file, recipe): the data and schedule checks run once per recipe."""
    chosen = {}
    for path in CONFIGS:
        parsed = parse_name(path)
        if parsed:
            chosen.setdefault(recipe_key(load(path), parsed[0]), path)
    return chosen


@pytest.mark.parametrize('recipe', sorted(RECIPES), ids=lambda r: f'{r[0]}-{r[1]}')
def test_recipe_schedule(recipe):
    """LR per epoch follows the OFA code's recipe (docs/methods/conventions.md); no weight decay on 1-D parameters; EMA for the ImageNet ViT recipe."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = load(recipe_configs()[recipe])
    expected = RECIPES[recipe]
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with DefaultScope.overwrite_default_scope('kdzoo'):
        wrapper = build_optim_wrapper(net, copy.deepcopy(cfg.optim_wrapper))
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper)) for s in copy.deepcopy(cfg.param_scheduler)]
    decay = {tuple(p.shape): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    assert decay[(4, 3, 3, 3)] == expected['weight_decay'] and decay[(4,)] == 0.0
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(wrapper.optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    timm = [timm_lr(expected, epoch) for epoch in range(expected['epochs'])]
    assert lrs[0] == pytest.approx(expected['warmup_lr'], rel=1e-6)
    assert max(abs(a - b) for a, b in zip(lrs, timm)) < 0.01 * expected['lr'], "LR differs from timm's schedule"
    assert lrs[-1] == pytest.approx(expected['final_lr'], rel=0.05)
    ema = [h for h in cfg.custom_hooks if h['type'] == 'EMAHook']
    if recipe == ('imagenet', 'vit'):   # model EMA with decay 0.99996
        assert len(ema) == 1 and 1 - ema[0]['momentum'] == pytest.approx(0.99996, abs=1e-12)
        HOOKS.build(copy.deepcopy(ema[0]))
    else:
        assert not ema


@pytest.mark.parametrize('recipe', sorted(RECIPES), ids=lambda r: f'{r[0]}-{r[1]}')
def test_recipe_data(recipe, tmp_path):
    """The train pipeline makes 224×224 inputs; mixup / cutmix give soft labels; a missing data folder fails
    naming the folder (and, for CIFAR-100, the config key)."""
    cfg = load(recipe_configs()[recipe])
    batch = train_batch(cfg, str(tmp_path))
    assert all(tuple(x.shape) == (3, 224, 224) for x in batch['inputs'])
    preprocessor = MODELS.build(copy.deepcopy(cfg.model.data_preprocessor))
    data = preprocessor(batch, True)
    assert tuple(data['inputs'].shape) == (BATCH, 3, 224, 224)
    assert ('gt_score' in data['data_samples'][0]) == RECIPES[recipe]['mixup']
    with DefaultScope.overwrite_default_scope('kdzoo'):
        test_pipeline = Compose(copy.deepcopy(cfg.val_dataloader.dataset.pipeline))
    image = fake_image(recipe[0], 0)
    if 'LoadImageFromFile' in str(cfg.val_dataloader.dataset.pipeline[0]['type']):
        import mmcv
        mmcv.imwrite(image, str(tmp_path / 'val.jpg'))
        sample = dict(img_path=str(tmp_path / 'val.jpg'), gt_label=0)
    else:
        sample = dict(img=image, gt_label=0)
    assert tuple(test_pipeline(sample)['inputs'].shape) == (3, 224, 224)

    for loader in ('train_dataloader', 'val_dataloader'):
        missing = str(tmp_path / 'no_such_dataset')
        dataset_cfg = dict(copy.deepcopy(cfg[loader].dataset), data_root=missing)
        with pytest.raises(FileNotFoundError) as error, DefaultScope.overwrite_default_scope('kdzoo'):
            DATASETS.build(dataset_cfg)
        assert missing in str(error.value)
        if recipe[0] == 'cifar100':
            assert f'{loader}.dataset.data_root' in str(error.value)


def test_cifar100_never_downloads_by_default(tmp_path):
    dataset = DATASETS.get('CIFAR100')
    assert dataset.__module__ == 'kdzoo.datasets.cifar'
    with pytest.raises(FileNotFoundError, match='MISSING .*cifar-100-python'):
        dataset(data_root=str(tmp_path), split='train', pipeline=[])


# ------------------------------------------------------------------------------------------ build + forward
def assert_timm_class(module, model_name):
    inner = getattr(module, 'model', module)
    assert type(inner).__name__ == TIMM_CLASSES[model_name], (type(inner).__name__, model_name)


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs(path):
    cfg = load(path)
    result = built_group(group_key(cfg))[path]
    if 'error' in result:
        raise result['error']
    model = result['model']
    assert tuple(result['output'].shape) == (BATCH, cfg.model.student.num_classes)
    assert torch.isfinite(result['task']['loss_cls'])
    assert_timm_class(model.student, cfg.model.student.model_name)
    for name, teacher_cfg in (cfg.model.teachers or {}).items():
        if 'model_name' in teacher_cfg.model:   # kdzoo's own models (RedNet) are built by their type
            assert_timm_class(model.teachers[name], teacher_cfg.model.model_name)
        assert not model.teachers[name].training
        assert not any(p.requires_grad for p in model.teachers[name].parameters())
    own = cfg.model.get('distillers') or []
    indices = result['indices']
    assert len(indices) == len(own)
    for index, distiller_cfg in zip(indices, own):
        distiller = model.distillers[index]
        assert type(distiller) is DISTILLERS.get(distiller_cfg['type'])
        losses = result['losses'][index]
        assert losses, f"{distiller_cfg['type']} returned no loss"
        for name, value in losses.items():
            assert name.startswith('loss_') and torch.isfinite(value).all(), (name, value)
    parsed = parse_name(path)
    if parsed and parsed[2] == 'student':
        assert len(model.teachers) == 0 and len(model.distillers) == 0
    if parsed and parsed[2] == 'fitnet':   # stages 1-4, no KD term (docs/methods/fitnet.md, 'Official code and kdzoo switches')
        assert [d['type'] for d in own] == ['fitnet'] and len(own[0]['stages']) == 4
        # Every pair is CNN <-> token model (Swin counted as tokens, as in PAT): PAT's aligners, never the
        # CNN <-> CNN regressor (conv + BN + ReLU) that a Swin read as a map would get.
        from kdzoo.methods.fitnet.distiller import ConvRegressor
        assert not any(isinstance(a, ConvRegressor) for a in model.distillers[indices[0]].aligners.values())
    if parsed and parsed[1].endswith('mobilenetv2'):   # stage 4 = conv_head + bn2, 1280 channels (docs/methods/conventions.md)
        assert model.student.kdzoo_stages[-1] == 'model.bn2'
    if parsed and parsed[2] == 'ofa' and parsed[1].endswith('swin_p'):   # token branches for the Swin student
        assert model.distillers[indices[0]].student_family == 'token'
    if any(h['type'] == 'EMAHook' for h in cfg.custom_hooks) and parsed and parsed[2] == 'kd':
        from mmengine.model import ExponentialMovingAverage
        ema = ExponentialMovingAverage(model, momentum=4e-5, update_buffers=True)   # what EMAHook builds
        ema.update_parameters(model)


@pytest.mark.slow
def test_teacher_conversion_script_from_configs_readme(tmp_path, monkeypatch):
    """configs/README.md's convert_teacher.py turns a timm-0.6.5-style Swin training checkpoint (old key layout,
    pickled args) into a file the CIFAR-100 Swin-T pair's teacher loads."""
    import argparse
    import runpy
    import timm
    from kdzoo.models.distill_model import build_teacher
    from run_helpers import markdown_examples
    script = tmp_path / 'convert_teacher.py'
    script.write_text(markdown_examples('configs/README.md')['convert_teacher.py'])
    with quick_random_init():
        reference = timm.create_model('swin_tiny_patch4_window7_224', num_classes=100).state_dict()
    old_layout = {re.sub(r'layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) - 1}.downsample', key)
                  .replace('head.fc.', 'head.'): value for key, value in reference.items()}
    old_layout['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(49 * 49, dtype=torch.long)
    source, target = tmp_path / 'released.pth', tmp_path / 'checkpoints' / 'swin_t.pth'
    torch.save({'epoch': 299, 'state_dict': old_layout, 'args': argparse.Namespace(lr=0.05)}, source)
    monkeypatch.setattr('sys.argv', ['convert_teacher.py', str(source), 'swin_tiny_patch4_window7_224', '100',
                                     str(target)])
    with quick_random_init():
        runpy.run_path(str(script), run_name='__main__')
    teacher_cfg = copy.deepcopy(load('configs/cifar100/swin_t-mobilenetv2_kd.py').model.teachers.swin_t.to_dict())
    teacher_cfg['checkpoint'] = str(target)
    with quick_random_init():
        teacher = build_teacher(teacher_cfg)
    loaded = teacher.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in reference.items())
    import datetime   # anything beyond tensors, containers and the args is refused, naming what it asked for
    torch.save({'state_dict': old_layout, 'saved': datetime.date(2023, 1, 1)}, source)
    with pytest.raises(pickle.UnpicklingError, match='datetime'):
        runpy.run_path(str(script), run_name='__main__')
