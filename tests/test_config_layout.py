"""How configs/ shares its pieces (issue 15, item 6): method fragments in configs/_base_/methods/ used by the
CIFAR-100 and ImageNet trees alike, one recipe base per student family, the MNIST models and the quick-start
schedule declared once. The checks pin the values those shared pieces must resolve to and the invariants that
copying used to break (a teacher config training another model than the one distillation loads, a cosine that
outlives an overridden train_cfg.max_epochs)."""
import ast
import functools
import glob
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')
MNIST_CONFIGS = sorted(glob.glob(osp.join(CONFIGS, 'quickstart', '*.py')) +
                       glob.glob(osp.join(CONFIGS, 'benchmarks', 'mnist', '**', '*.py'), recursive=True))


@functools.lru_cache(maxsize=None)
def load(path):
    return Config.fromfile(osp.join(ROOT, path))


def base_files(path):
    """The `_base_` list of a config file, read without executing it."""
    for node in ast.parse(open(path, encoding='utf-8').read()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '_base_':
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


@pytest.mark.parametrize('dataset, other', [('cifar100', 'imagenet'), ('imagenet', 'cifar100')])
def test_paper_configs_take_their_method_from_the_shared_fragments(dataset, other):
    configs = sorted(glob.glob(osp.join(CONFIGS, dataset, '*.py')))
    assert configs
    for path in configs + sorted(glob.glob(osp.join(CONFIGS, dataset, '_base_', '**', '*.py'), recursive=True)):
        for base in base_files(path):
            resolved = osp.normpath(osp.join(osp.dirname(path), base))
            assert not resolved.startswith(osp.join(CONFIGS, other) + osp.sep), f'{path} inherits {base}'
            if '/methods/' in base:
                assert osp.dirname(resolved) == osp.join(CONFIGS, '_base_', 'methods'), f'{path}: {base}'
    assert not osp.exists(osp.join(CONFIGS, dataset, '_base_', 'methods'))


def test_method_settings_that_differ_between_cifar100_and_imagenet():
    def distiller(path):
        return load(path).model.distillers[0]

    assert distiller('configs/cifar100/convnext_t-deit_t_ofa.py').eps == 1.0
    assert distiller('configs/imagenet/convnext_t-deit_t_ofa.py').eps == 1.5
    assert distiller('configs/cifar100/swin_t-resnet18_fofa.py').num_queries == 64
    assert distiller('configs/imagenet/swin_t-resnet18_fofa.py').num_queries == 144
    for method in ('kd', 'dkd', 'dist', 'rkd', 'fitnet'):   # one fragment for both datasets
        assert (load(f'configs/cifar100/swin_t-resnet18_{method}.py').model.distillers ==
                load(f'configs/imagenet/swin_t-resnet18_{method}.py').model.distillers)


def test_vit_recipes_share_their_family_base_and_differ_in_the_cosine_floor():
    cifar = load('configs/_base_/schedules/cifar100_vit_300e.py')
    imagenet = load('configs/_base_/schedules/imagenet_vit_300e.py')
    assert cifar.optim_wrapper == imagenet.optim_wrapper and cifar.train_cfg == imagenet.train_cfg
    (cifar_warmup, cifar_cosine), (imagenet_warmup, imagenet_cosine) = cifar.param_scheduler, imagenet.param_scheduler
    assert cifar_warmup == imagenet_warmup == dict(type='LinearLR', start_factor=5e-7 / 5e-4, by_epoch=True,
                                                   begin=0, end=21)
    assert (cifar_cosine.eta_min, imagenet_cosine.eta_min) == (1e-5, 1e-6)
    assert dict(cifar_cosine, eta_min=None) == dict(imagenet_cosine, eta_min=None)
    assert cifar_cosine.T_max == cifar_cosine.end == 300
    assert [h['type'] for h in imagenet.custom_hooks] == ['TeacherEvalHook', 'EMAHook']
    assert (cifar.default_hooks.checkpoint.interval, imagenet.default_hooks.checkpoint.interval) == (10, 5)


def test_cnn_recipes_share_their_family_base():
    cifar = load('configs/_base_/schedules/cifar100_cnn_300e.py')
    imagenet = load('configs/_base_/schedules/imagenet_cnn_100e.py')
    for cfg, lr, decay, epochs in ((cifar, 0.05, 2e-3, 300), (imagenet, 0.1, 1e-4, 100)):
        assert cfg.optim_wrapper.optimizer == dict(type='SGD', momentum=0.9, nesterov=True, lr=lr, weight_decay=decay)
        assert cfg.train_cfg == dict(by_epoch=True, val_interval=1, max_epochs=epochs)
        assert cfg.param_scheduler[0] == dict(type='LinearLR', start_factor=1e-4 / lr, by_epoch=True, begin=0, end=4)
    assert [s['type'] for s in imagenet.param_scheduler] == ['LinearLR', 'MultiStepLR']


@pytest.mark.parametrize('path', [p for p in MNIST_CONFIGS if not osp.basename(p).startswith('_')],
                         ids=lambda p: osp.relpath(p, CONFIGS))
def test_teacher_configs_train_the_model_that_distillation_loads(path):
    cfg = load(osp.relpath(path, ROOT))
    for name, teacher_config in (cfg.get('teacher_configs') or {}).items():
        teacher = load(teacher_config)
        assert teacher.model.student == cfg.model.teachers[name].model, f'{name}: {teacher_config}'
        assert not teacher.model.get('teachers')


@pytest.mark.parametrize('path', ['configs/_base_/schedules/quickstart.py'] +
                         [osp.relpath(p, ROOT) for p in MNIST_CONFIGS])
def test_quick_start_cosine_ends_at_train_cfg_max_epochs(path):
    """No T_max / end: mmengine's runner ends the cosine at train_cfg.max_epochs, also when that is overridden."""
    cfg = load(path)
    cosines = [s for s in cfg.get('param_scheduler') or [] if s['type'] == 'CosineAnnealingLR']
    assert len(cosines) == (1 if 'train_cfg' in cfg else 0)
    for cosine in cosines:
        assert 'T_max' not in cosine and 'end' not in cosine and cosine.eta_min == 1e-5


def test_mnist_models_are_declared_once():
    quickstart = load('configs/quickstart/_models.py')
    benchmark = load('configs/benchmarks/mnist/_base_/models.py')
    for name in ('vit_teacher', 'cnn_teacher', 'rednet_teacher', 'cnn_student', 'vit_student'):
        assert benchmark[name] == quickstart[name]
    assert benchmark.checkpoints.cnn == quickstart.checkpoints.cnn   # shared teacher weights
    assert benchmark.checkpoints.vit == quickstart.checkpoints.vit   # one shipped ViT teacher for both
    for path in glob.glob(osp.join(CONFIGS, 'quickstart', '*.py')) + glob.glob(
            osp.join(CONFIGS, 'benchmarks', 'mnist', '_base_', 'models.py')):
        if osp.basename(path) != '_models.py':
            text = open(path, encoding='utf-8').read()
            for model in ("model_name='resnet10t'", "model_name='vit_tiny_patch16_224'", "type='rednet26'"):
                assert model not in text, f'{path} re-declares {model}: take it from quickstart/_models.py'
