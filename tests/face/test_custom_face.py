"""configs/face/custom_*.py: face_data resolved after --cfg-options (num_classes from property, any .bin sets,
save_best from the first), and the face guide's own-faces commands end to end on a folder of ORL photos."""
import os
import os.path as osp
import shutil

import pytest

from kdzoo.face.datasets import ORL_ROOT, write_property
from kdzoo.face.datasets.custom_config import resolve_face_data
from kdzoo.tools_support import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CUSTOM = osp.join(REPO, 'configs', 'face')


@pytest.fixture
def face_root(tmp_path):
    root = tmp_path / 'my_faces'
    root.mkdir()
    write_property(str(root / 'property'), 7, 112, 112)
    return root


def custom(name, **options):
    return load_config(osp.join(CUSTOM, name), options)


def margin_heads(cfg):
    heads = [cfg.model.student.head]
    heads += [teacher.model.head for teacher in (cfg.model.get('teachers') or {}).values()]
    return heads


@pytest.mark.parametrize('name', ['custom_teacher.py', 'custom_student.py', 'custom_kd.py', 'custom_urfm_apt.py'])
def test_num_classes_from_property_and_one_loader_per_set(face_root, tmp_path, name):
    elsewhere = str(tmp_path / 'sets' / 'lfw.bin')
    cfg = custom(name, **{'face_data.data_root': str(face_root),
                          'face_data.verification_sets': ['pairs', elsewhere]})
    assert 'face_data' not in cfg
    assert [head.num_classes for head in margin_heads(cfg)] == [7] * len(margin_heads(cfg))
    assert cfg.train_dataloader.dataset.data_root == str(face_root)
    for split in ('val', 'test'):
        assert [loader.dataset.path for loader in cfg[f'{split}_dataloader']] == [
            str(face_root / 'pairs.bin'), elsewhere]
        assert [metric.prefix for metric in cfg[f'{split}_evaluator']] == ['pairs', 'lfw']
    assert cfg.default_hooks.checkpoint.save_best == 'pairs/acc' and cfg.default_hooks.checkpoint.rule == 'greater'


def test_save_best_follows_the_first_set_and_best_metric(face_root):
    cfg = custom('custom_student.py', **{'face_data.data_root': str(face_root),
                                         'face_data.verification_sets': ['agedb_30', 'lfw'],
                                         'face_data.best_metric': 'auc'})
    assert cfg.default_hooks.checkpoint.save_best == 'agedb_30/auc'
    assert [m.prefix for m in cfg.val_evaluator] == ['agedb_30', 'lfw']


def test_data_root_from_the_environment(face_root, monkeypatch):
    monkeypatch.setenv('FACE_DATA_ROOT', str(face_root))
    cfg = custom('custom_kd.py')
    assert cfg.model.teachers.swin.model.head.num_classes == 7
    assert cfg.val_dataloader[0].dataset.path == str(face_root / 'pairs.bin')


def test_the_resolved_config_runs_as_it_is(face_root, tmp_path):
    """The work dir's dump of a resolved config has no face_data and loads to the same config."""
    cfg = custom('custom_kd.py', **{'face_data.data_root': str(face_root)})
    dumped = str(tmp_path / 'dumped.py')
    cfg.dump(dumped)
    again = load_config(dumped)
    assert again.val_dataloader == cfg.val_dataloader and again.model == cfg.model


def test_missing_or_unreadable_property_names_the_file_and_the_key(face_root, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        custom('custom_kd.py', **{'face_data.data_root': str(tmp_path / 'nowhere')})
    message = str(error.value)
    assert str(tmp_path / 'nowhere' / 'property') in message and 'model.student.head.num_classes' in message
    assert 'tools/face2rec.py' in message and 'No such file' in message
    (face_root / 'property').write_text('many people\n')
    with pytest.raises(ValueError, match=r"num_classes='auto' is read from .*property.*num_classes,height,width"):
        custom('custom_kd.py', **{'face_data.data_root': str(face_root)})


def test_num_classes_given_as_a_number_needs_no_property(tmp_path):
    cfg = custom('custom_student.py', **{'face_data.data_root': str(tmp_path), 'model.student.head.num_classes': 5})
    assert cfg.model.student.head.num_classes == 5


@pytest.mark.parametrize('sets, match', [
    ([], 'non-empty list'),
    ('pairs', 'non-empty list'),
    (['pairs', '/other/pairs.bin'], r"\['pairs'\] appear more than once"),
    ([3], 'is not a set name or a .bin path'),
])
def test_bad_verification_sets_are_refused(face_root, sets, match):
    with pytest.raises(ValueError, match=match):
        custom('custom_student.py', **{'face_data.data_root': str(face_root), 'face_data.verification_sets': sets})


def test_unknown_face_data_key_and_list_templates_are_refused(face_root):
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['verification_set'\]"):
        custom('custom_student.py', **{'face_data.verification_set': ['pairs']})
    cfg = load_config(osp.join(CUSTOM, 'custom_student.py'), {'face_data.data_root': str(face_root)})
    cfg.face_data = dict(data_root=str(face_root), verification_sets=['pairs'])
    with pytest.raises(TypeError, match='must each be one dict'):
        resolve_face_data(cfg)


def test_configs_without_face_data_are_unchanged():
    cfg = load_config(osp.join(CUSTOM, 'orl_student.py'))
    assert resolve_face_data(cfg) is cfg and cfg.model.student.head.num_classes == 28


# ------------------------------------------------------------------ the guide's commands, end to end (slow)

def photo_folder(root, subjects):
    """One sub-folder of photos per person, copied from the embedded ORL faces (92x112 grey .pgm)."""
    for subject in subjects:
        shutil.copytree(osp.join(ORL_ROOT, subject), root / subject)
    return root


def tiny_options(tmp_path):
    return ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.batch_size=20', 'test_dataloader.batch_size=20']


@pytest.mark.slow
def test_guide_from_photos_to_a_distilled_student(tmp_path):
    from run_helpers import run_tool
    train_photos = photo_folder(tmp_path / 'photos', ['s10', 's11', 's12', 's13'])
    held_out = photo_folder(tmp_path / 'held_out', ['s14', 's15', 's16'])
    data = tmp_path / 'my_faces'
    rc, out = run_tool('tools/face2rec.py', '--root', str(train_photos), '--output', str(data), '--resize', '112', '112')
    assert rc == 0, out
    rc, out = run_tool('tools/face2rec.py', '--root', str(held_out), '--resize', '112', '112', '--pairs-only',
                       '--pairs-bin', str(data / 'pairs.bin'), '--num-pairs', '40')
    assert rc == 0, out
    assert (data / 'property').read_text().strip() == '4,112,112'
    env = dict(FACE_DATA_ROOT=str(data))
    teacher = tmp_path / 'teacher.safetensors'
    work_dir = tmp_path / 'custom_kd'
    rc, out = run_tool('tools/train.py', 'configs/face/custom_kd.py', '--work-dir', str(work_dir),
                       '--cfg-options', *tiny_options(tmp_path), f'model.teachers.swin.checkpoint={teacher}',
                       '--teacher-cfg-options', *tiny_options(tmp_path), env=env)
    assert rc == 0, out[-4000:]
    assert 'trained first with configs/face/custom_teacher.py' in out and teacher.is_file()
    summary = [line for line in out.splitlines() if 'kdzoo summary:' in line][-1]
    assert 'teacher swin pairs/acc' in summary and 'student pairs/acc' in summary
    best = [name for name in os.listdir(work_dir) if name.startswith('best_pairs_acc_epoch_')]
    assert best, os.listdir(work_dir)
    rc, out = run_tool('tools/test.py', 'configs/face/custom_kd.py', str(work_dir / best[0]), '--work-dir',
                       str(tmp_path / 'test'), '--cfg-options', 'test_dataloader.batch_size=20', env=env)
    assert rc == 0, out[-4000:]
    assert 'test results: pairs/acc:' in out
