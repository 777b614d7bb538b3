"""custom_imports of a module beside the config work from any working directory (tools' load_config)."""
import os
import sys
import uuid

import pytest

from kdzoo.tools_support import load_config
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
    from another folder without PYTHONPATH (the README's _base_ is reached through a configs/ link beside it)."""
    project = tmp_path / 'project'
    project.mkdir()
    for name, code in markdown_examples('README.md').items():
        (project / name).write_text(code)
    os.symlink(os.path.join(ROOT, 'configs'), project / 'configs')
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
