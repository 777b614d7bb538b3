"""Configs outside the repository: custom_imports of a module beside the config and `kdzoo::` bases work from
any working directory (tools' load_config, and Config.fromfile after `import kdzoo`)."""
import configparser
import os
import sys
import uuid

import pytest
from mmengine.config import Config

import kdzoo
from kdzoo.tools_support import load_config, shipped_path
from run_helpers import ROOT, markdown_examples, random_vit_teacher, run_tool


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working directory that is not on sys.path; sys.path is restored after."""
    folder = tmp_path / 'elsewhere'
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, 'path', [p for p in sys.path if p not in ('', '.', str(folder))])
    return folder


def config_with_module(folder, module_code):
    """``folder/cfg.py`` importing a uniquely named module written beside it; returns (config path, module)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = f'beside_config_{uuid.uuid4().hex[:8]}'
    (folder / f'{module}.py').write_text(module_code)
    (folder / 'cfg.py').write_text(f"custom_imports = dict(imports=[{module!r}], allow_failed_imports=False)\n"
                                   "model = dict(type='DistillModel')\n")
    return str(folder / 'cfg.py'), module


def test_module_beside_the_config_imports_from_another_folder(tmp_path, elsewhere):
    # the module imports a sibling module too: the config's folder stays on sys.path
    (tmp_path / 'project').mkdir()
    (tmp_path / 'project' / 'helper_beside.py').write_text('VALUE = 42\n')
    path, module = config_with_module(tmp_path / 'project', 'import helper_beside\nLOADED = helper_beside.VALUE\n')
    assert str(tmp_path / 'project') not in sys.path
    load_config(path)
    assert sys.modules[module].LOADED == 42
    assert sys.path[0] == str(tmp_path / 'project')


def test_a_missing_module_names_where_it_was_looked_for(tmp_path, elsewhere):
    path, module = config_with_module(tmp_path / 'project', 'X = 1\n')
    os.remove(tmp_path / 'project' / f'{module}.py')
    with pytest.raises(ImportError, match=rf"{module}.*beside the config \(in {tmp_path / 'project'}\)") as error:
        load_config(path)
    assert isinstance(error.value.__cause__, ImportError)  # mmengine's own error is kept


def test_custom_imports_given_by_cfg_options_are_imported(tmp_path, elsewhere):
    path, module = config_with_module(tmp_path / 'project', 'X = 1\n')
    (tmp_path / 'project' / 'second_beside.py').write_text('Y = 2\n')
    load_config(path, {'custom_imports.imports': [module, 'second_beside']})
    assert sys.modules['second_beside'].Y == 2


@pytest.mark.slow
def test_readme_distiller_trains_from_a_temporary_folder(tmp_path):
    """The README's add-a-distiller example as written, in its own folder, trained with tools/train.py started
    from another folder without PYTHONPATH (its _base_ is kdzoo::quickstart/kd.py)."""
    project = tmp_path / 'project'
    project.mkdir()
    for name, code in markdown_examples('README.md').items():
        (project / name).write_text(code)
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    rc, out = run_tool(
        os.path.join(ROOT, 'tools', 'train.py'), str(project / 'my_config.py'), '--work-dir', str(tmp_path / 'run'),
        '--cfg-options', f'model.teachers.vit.checkpoint={teacher}', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.num_items=64', 'val_dataloader.dataset.num_items=50', 'train_dataloader.batch_size=32',
        'default_hooks.logger.interval=1', cwd=str(elsewhere), env=dict(PYTHONPATH=''))
    assert rc == 0, out[-4000:]
    assert 'loss_logit_mse' in out and 'kdzoo summary:' in out


PACKAGE = os.path.dirname(os.path.abspath(kdzoo.__file__))


def write_config(folder, text):
    (folder / 'my_config.py').write_text(text)
    return str(folder / 'my_config.py')


def test_kdzoo_base_loads_from_a_temporary_folder(elsewhere):
    path = write_config(elsewhere, "_base_ = 'kdzoo::quickstart/kd.py'\ntrain_cfg = dict(max_epochs=1)\n"
                                   "model = dict(distillers=[dict(type='kd', temperature=2.0)])\n")
    for cfg in (load_config(path), Config.fromfile(path)):
        assert cfg.model.type == 'DistillModel' and cfg.default_scope == 'kdzoo'
        assert cfg.model.distillers == [dict(type='kd', temperature=2.0)] and cfg.train_cfg.max_epochs == 1
        assert '_scope_' not in cfg.model  # loaded as a plain base, not scoped
    teacher_config = load_config(path).teacher_configs['vit']
    assert os.path.isfile(teacher_config) and teacher_config.startswith(os.path.join(PACKAGE, 'configs') + os.sep)


def test_shipped_teacher_checkpoint_and_config_resolve_from_a_temporary_folder(elsewhere):
    path = write_config(elsewhere, "_base_ = ['kdzoo::face/orl_kd.py']\n")
    cfg = load_config(path)
    checkpoint, teacher_config = cfg.model.teachers.swin.checkpoint, cfg.teacher_configs['swin']
    assert checkpoint == os.path.join(PACKAGE, 'data', 'teachers', 'orl_swin_teacher.safetensors')
    assert os.path.isfile(checkpoint) and os.path.isfile(teacher_config)


def test_kdzoo_config_named_directly(elsewhere):
    cfg = load_config('kdzoo::quickstart/kd.py', {'train_cfg.max_epochs': 2})
    assert cfg.model.distillers == [dict(type='kd', temperature=4.0)] and cfg.train_cfg.max_epochs == 2


def test_only_shipped_paths_move(elsewhere):
    assert shipped_path('configs/quickstart/kd.py') == os.path.join(PACKAGE, 'configs', 'quickstart', 'kd.py')
    assert shipped_path('kdzoo/data/teachers/README.md') == os.path.join(PACKAGE, 'data', 'teachers', 'README.md')
    for kept in ('work_dirs/quickstart/cnn_teacher.safetensors', 'configs/no_such.py', 'kdzoo/no_such.pth',
                 'data/cifar100'):
        assert shipped_path(kept) == kept
    (elsewhere / 'configs').mkdir()
    (elsewhere / 'configs' / 'mine.py').write_text('')
    assert shipped_path('configs/mine.py') == 'configs/mine.py'  # the working directory's own file wins


def test_from_the_repository_root_paths_stay_as_written(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config('configs/quickstart/kd.py')
    assert cfg.teacher_configs['vit'] == Config.fromfile('configs/quickstart/kd.py').teacher_configs['vit']


def test_a_missing_kdzoo_base_names_the_path_looked_for(elsewhere):
    path = write_config(elsewhere, "_base_ = 'kdzoo::quickstart/no_such.py'\n")
    looked_for = os.path.join(PACKAGE, 'configs', 'quickstart', 'no_such.py')
    for load in (load_config, Config.fromfile):
        with pytest.raises(FileNotFoundError, match=f"kdzoo::quickstart/no_such.py.*{looked_for}"):
            load(path)


def test_other_bases_are_left_to_mmengine(elsewhere):
    (elsewhere / 'base.py').write_text("a = dict(type='X', b=1)\n")
    path = write_config(elsewhere, "_base_ = ['./base.py']\na = dict(b=2)\n")
    assert Config.fromfile(path).a == dict(type='X', b=2)


def test_configs_ship_in_the_package():
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, 'setup.cfg'))
    assert 'configs/**/*' in [p.strip() for p in setup['options.package_data']['kdzoo'].replace(',', '\n').split()]
    assert os.path.islink(os.path.join(ROOT, 'configs'))
    assert os.path.realpath(os.path.join(ROOT, 'configs')) == os.path.realpath(os.path.join(PACKAGE, 'configs'))
    # not an importable package: setuptools ships it as data only (package_data above)
    assert not any('__init__.py' in files for _, _, files in os.walk(os.path.join(PACKAGE, 'configs')))
