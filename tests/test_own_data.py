"""docs/own_data.md: its configs (configs/own_data) on a generated image folder of coloured shapes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from kdzoo.registry import DATASETS
from run_helpers import ROOT, run_tool

OWN_DATA = osp.join(ROOT, 'configs', 'own_data')
CLASSES = ('circle', 'square', 'triangle')
COLOURS = ((220, 40, 40), (40, 180, 40), (40, 60, 220), (200, 160, 20))


def draw_shape(shape, colour, offset):
    from PIL import Image, ImageDraw
    image = Image.new('RGB', (32, 32), (255, 255, 255))
    box = [4 + offset, 4 + offset, 24 + offset, 24 + offset]
    draw = ImageDraw.Draw(image)
    if shape == 'circle':
        draw.ellipse(box, fill=colour)
    elif shape == 'square':
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    return image


def make_image_folder(root, per_class=dict(train=8, val=4)):
    """``root/{train,val}/<shape>/*.png``: 32x32 shapes in a few colours and positions."""
    for split, count in per_class.items():
        for shape in CLASSES:
            folder = root / split / shape
            folder.mkdir(parents=True)
            for i in range(count):
                draw_shape(shape, COLOURS[i % len(COLOURS)], i % 5).save(folder / f'{i}.png')
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / 'shapes')


def own_config(name, image_folder, monkeypatch, num_classes=len(CLASSES)):
    monkeypatch.setenv('OWN_DATA_ROOT', str(image_folder))
    monkeypatch.setenv('OWN_NUM_CLASSES', str(num_classes))
    return Config.fromfile(osp.join(OWN_DATA, name))


def test_page_configs_parse_and_build_their_datasets(image_folder, monkeypatch):
    for name in ('vit_teacher.py', 'kd.py', 'student_only.py'):
        cfg = own_config(name, image_folder, monkeypatch)
        assert cfg.data_root == str(image_folder) and cfg.num_classes == 3
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        assert (len(train), len(val)) == (24, 12)
        assert train.metainfo['classes'] == CLASSES
        sample = train[0]
        assert sample['inputs'].shape == (3, 224, 224) and val[0]['inputs'].shape == (3, 224, 224)
    assert cfg.model.data_preprocessor.to_rgb and cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]


def test_teacher_and_student_share_the_architecture(image_folder, monkeypatch):
    teacher = own_config('vit_teacher.py', image_folder, monkeypatch).model.student
    kd = own_config('kd.py', image_folder, monkeypatch)
    assert teacher.pop('pretrained') is True
    assert dict(kd.model.teachers.vit.model) == dict(teacher)  # loaded strictly, so built identically
    assert kd.model.student.num_classes == 3 and kd.teacher_configs.vit == 'configs/own_data/vit_teacher.py'


def test_validation_split_missing_a_class_keeps_the_training_labels(image_folder, monkeypatch):
    for image in (image_folder / 'val' / 'circle').iterdir():
        image.unlink()
    (image_folder / 'val' / 'circle').rmdir()
    cfg = own_config('kd.py', image_folder, monkeypatch)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert sorted({int(val.get_gt_labels()[i]) for i in range(len(val))}) == [1, 2]
    assert val.metainfo['classes'] == CLASSES


def test_wrong_num_classes_and_missing_folder_are_named(image_folder, monkeypatch, tmp_path):
    cfg = own_config('kd.py', image_folder, monkeypatch, num_classes=5)
    with pytest.raises(ValueError, match=r'num_classes is 5 but .* has 3 class folders.*OWN_NUM_CLASSES'):
        DATASETS.build(cfg.train_dataloader.dataset)
    (image_folder / 'val' / 'hexagon').mkdir()
    cfg = own_config('kd.py', image_folder, monkeypatch)
    with pytest.raises(ValueError, match=r"\['hexagon'\] are not in the training classes"):
        DATASETS.build(cfg.val_dataloader.dataset)
    monkeypatch.setenv('OWN_DATA_ROOT', str(tmp_path / 'nowhere'))
    cfg = Config.fromfile(osp.join(OWN_DATA, 'kd.py'))
    with pytest.raises(FileNotFoundError, match=r'nowhere/train.*not found.*<class>.*OWN_DATA_ROOT'):
        DATASETS.build(cfg.train_dataloader.dataset)


def test_offline_pretrained_weights_come_from_a_local_file(image_folder, monkeypatch, tmp_path):
    """The page's offline route: timm loads ``pretrained_cfg_overlay=dict(file=...)`` through TimmClassifier,
    keeping the backbone and replacing the 1000-class head by one for num_classes."""
    import timm
    from safetensors.torch import save_file

    from kdzoo.models import build_model
    small = dict(model_name='vit_tiny_patch16_224', img_size=32, patch_size=8)
    saved = timm.create_model(**small)
    weights = str(tmp_path / 'vit_tiny.safetensors')
    save_file({k: v.contiguous() for k, v in saved.state_dict().items()}, weights)
    teacher = own_config('vit_teacher.py', image_folder, monkeypatch).model.student
    teacher.update(small, pretrained_cfg_overlay=dict(file=weights))
    model = build_model(teacher).model
    assert torch.equal(model.blocks[0].attn.qkv.weight, saved.blocks[0].attn.qkv.weight)
    assert model.head.out_features == 3


def tiny_data_options(size=32):
    options = ['model.input_size=(3,32,32)', 'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
               f'train_dataloader.dataset.pipeline.1.scale={size}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.batch_size=8', f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.pipeline.1.scale={size + 4}', f'{loader}.dataset.pipeline.2.crop_size={size}']
    return options


@pytest.mark.slow
def test_page_commands_train_the_teacher_then_distil(image_folder, tmp_path):
    """kd.py end to end as the page runs it: the teacher is fine-tuned first from vit_teacher.py (here from a
    local 'pretrained' file, as offline), then distilled into the CNN; shrunk to tiny models and 32x32."""
    import timm
    from safetensors.torch import save_file
    vit = ['model_name=vit_tiny_patch16_224', 'img_size=32', 'patch_size=8']
    weights = str(tmp_path / 'vit_tiny_in1k.safetensors')
    save_file({k: v.contiguous() for k, v in timm.create_model(
        'vit_tiny_patch16_224', img_size=32, patch_size=8).state_dict().items()}, weights)
    checkpoint = tmp_path / 'teacher' / 'vit_teacher.safetensors'
    rc, out = run_tool(
        'tools/train.py', osp.join(OWN_DATA, 'kd.py'), '--work-dir', str(tmp_path / 'kd'),
        '--cfg-options', *tiny_data_options(), 'model.student.model_name=resnet10t', 'model.student.pretrained=False',
        f'model.teachers.vit.checkpoint={checkpoint}', *[f'model.teachers.vit.model.{v}' for v in vit],
        '--teacher-cfg-options', *tiny_data_options(), *[f'model.student.{v}' for v in vit],
        f'model.student.pretrained_cfg_overlay.file={weights}',
        env=dict(OWN_DATA_ROOT=str(image_folder), OWN_NUM_CLASSES='3'))
    assert rc == 0, out[-4000:]
    assert 'trained first with configs/own_data/vit_teacher.py' in out and checkpoint.is_file()
    summary = [line for line in out.splitlines() if 'kdzoo summary:' in line][-1]
    assert 'teacher vit accuracy/top1' in summary and 'student accuracy/top1' in summary
    best = sorted((tmp_path / 'kd').glob('best_accuracy_top1_epoch_*.pth'))  # the page's test command's file
    assert best, sorted(p.name for p in (tmp_path / 'kd').iterdir())
    rc, out = run_tool('tools/test.py', osp.join(OWN_DATA, 'kd.py'), str(best[0]), '--work-dir',
                       str(tmp_path / 'test'), '--cfg-options', *tiny_data_options(),
                       'model.student.model_name=resnet10t', 'model.student.pretrained=False',
                       env=dict(OWN_DATA_ROOT=str(image_folder), OWN_NUM_CLASSES='3'))
    assert rc == 0, out[-4000:]
    assert 'test results: accuracy/top1:' in out
