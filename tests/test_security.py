"""No code runs from a file: every entry point refuses a pickle whose unpickling has a side effect.

The payload (``OpensFile``) creates a marker file when unpickled, through ``builtins.open``; each test asserts the
marker does not exist afterwards and that the error names the file, the offending global and the fix.
"""
import datetime
import os
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from kdzoo.models.weights import (UnsafeCheckpointError, history_buffer_statistic, load_checkpoint_file,
                                  trusted_checkpoints)
from run_helpers import load_tool, random_vit_teacher, tiny_config


class OpensFile:
    """Unpickling this creates ``marker``: the stand-in for any code a crafted file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


class ReachesModuleGlobals:
    """``getattr(HistoryBuffer.min, '__globals__')``: what an unrestricted ``builtins.getattr`` would allow."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer.min, '__globals__'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A real tools/train.py checkpoint of the tiny student-only run, and its config."""
    tmp = tmp_path_factory.mktemp('security')
    config = tiny_config(tmp, 'student_only', train_items=64, val_items=50, batch_size=32)
    load_tool('train').main([config, '--work-dir', str(tmp / 'run')])
    return config, tmp / 'run' / 'epoch_1.pth'


@pytest.fixture
def evil(trained, tmp_path):
    """A copy of the real checkpoint with the payload added; returns (path, marker)."""
    _, checkpoint = trained
    content = torch.load(checkpoint, weights_only=False)
    marker = tmp_path / 'CODE_RAN'
    content['meta']['note'] = OpensFile(marker)
    path = tmp_path / 'evil.pth'
    torch.save(content, path)
    return str(path), marker


def assert_refused(error, path, marker):
    message = str(error.value)
    assert not marker.exists(), 'the payload ran'
    assert path in message and 'io.open' in message and 'weights_only=True' in message
    assert '--trust-checkpoint' in message


def test_resume_refuses_code_in_the_checkpoint(trained, evil, tmp_path):
    config, _ = trained
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as error:
        load_tool('train').main([config, '--work-dir', str(tmp_path / 'w'), '--resume', path])
    assert_refused(error, path, marker)
    assert str(error.value).startswith(f'--resume {path}')


def test_load_from_refuses_code_and_does_not_train_from_scratch(trained, evil, tmp_path):
    config, _ = trained
    path, marker = evil
    work_dir = tmp_path / 'w'
    with pytest.raises(UnsafeCheckpointError) as error:
        load_tool('train').main([config, '--work-dir', str(work_dir), '--cfg-options', f'load_from={path}'])
    assert_refused(error, path, marker)
    assert str(error.value).startswith('load_from:')
    assert not list(work_dir.glob('epoch_*.pth'))


def test_test_tool_refuses_code_in_the_checkpoint(trained, evil, tmp_path):
    config, _ = trained
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as error:
        load_tool('test').main([config, path, '--work-dir', str(tmp_path / 't')])
    assert_refused(error, path, marker)
    assert str(error.value).startswith('CHECKPOINT:')


def test_export_tool_refuses_code_in_the_checkpoint(trained, evil, tmp_path):
    config, _ = trained
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as error:
        load_tool('export').main([config, path, '--out-dir', str(tmp_path / 'x'), '--no-onnx'])
    assert_refused(error, path, marker)
    assert not (tmp_path / 'x').exists()


def test_teacher_checkpoint_refuses_code(tmp_path):
    from kdzoo.registry import MODELS
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    from safetensors.torch import load_file
    marker, path = tmp_path / 'CODE_RAN', str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': load_file(teacher), 'extra': OpensFile(marker)}, path)
    cfg = Config.fromfile(tiny_config(tmp_path, 'kd', teacher=path))
    with pytest.raises(UnsafeCheckpointError) as error:
        MODELS.build(cfg.model)
    assert_refused(error, path, marker)
    assert str(error.value).startswith('model.teachers.vit: refused to load')


def test_trained_checkpoints_still_load_everywhere(trained, tmp_path):
    """The allow-list is enough for the Runner's own files: resume, test and export all read them."""
    config, checkpoint = trained
    assert set(load_checkpoint_file(checkpoint)) >= {'meta', 'state_dict', 'message_hub', 'optimizer'}
    metrics = load_tool('test').main([config, str(checkpoint), '--work-dir', str(tmp_path / 't')])
    assert 'accuracy/top1' in metrics
    written = load_tool('export').main([config, str(checkpoint), '--out-dir', str(tmp_path / 'x'), '--no-onnx'])
    assert all(os.path.isfile(p) for p in written)


def test_the_allow_list_is_scoped_to_the_load(trained):
    _, checkpoint = trained
    before = set(torch.serialization.get_safe_globals())   # torch's own (exceptions, DTensor)
    load_checkpoint_file(checkpoint)
    assert set(torch.serialization.get_safe_globals()) == before
    assert HistoryBuffer not in before
    with pytest.raises(pickle.UnpicklingError):   # plain torch.load is as strict as before
        torch.load(checkpoint, weights_only=True)


def test_getattr_in_a_checkpoint_reaches_only_history_buffer_statistics(tmp_path):
    assert history_buffer_statistic(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        history_buffer_statistic(HistoryBuffer.min, '__globals__')
    path = str(tmp_path / 'globals.pth')
    torch.save({'state_dict': {}, 'x': ReachesModuleGlobals()}, path)
    with pytest.raises(UnsafeCheckpointError, match='refusing getattr'):
        load_checkpoint_file(path)


def test_other_globals_are_named_and_need_the_explicit_flag(tmp_path):
    path = str(tmp_path / 'dated.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}, 'when': datetime.date(2024, 1, 2)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"it names datetime\.date, outside the globals"):
        load_checkpoint_file(path)
    with trusted_checkpoints():
        assert load_checkpoint_file(path)['when'] == datetime.date(2024, 1, 2)
    with pytest.raises(UnsafeCheckpointError):   # the trust ends with the block
        load_checkpoint_file(path)


def test_plain_mmengine_code_still_refuses_after_import_kdzoo(evil):
    import kdzoo  # noqa: F401
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    path, marker = evil
    with pytest.raises(pickle.UnpicklingError):   # mmengine's own loader, as before kdzoo was imported
        load_from_local(path, map_location='cpu')
    with pytest.raises(pickle.UnpicklingError) as error:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert_refused(error, path, marker)


def test_face_verification_bin_refuses_code(tmp_path):
    from kdzoo.face.datasets.verification_bin import UnsafePickleError, load_verification_bin
    marker, path = tmp_path / 'CODE_RAN', tmp_path / 'lfw.bin'
    path.write_bytes(pickle.dumps(([OpensFile(marker), b'x'], [True]), protocol=2))
    with pytest.raises(UnsafePickleError, match=r'lfw\.bin: refusing to load global (builtins|io)\.open'):
        load_verification_bin(path)
    assert not marker.exists()


def test_benchmark_spec_refuses_code(tmp_path):
    from kdzoo.bench import SpecError, load_spec
    marker, path = tmp_path / 'CODE_RAN', tmp_path / 'spec.yaml'
    path.write_text(f"name: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(SpecError, match='not valid YAML'):
        load_spec(str(path))
    assert not marker.exists()


# ------------------------------------------------------------------------------------ no shell for slurm

def test_slurm_hostlists_expand_without_a_shell():
    from kdzoo.utils.compat import expand_slurm_hostlist, first_slurm_host
    assert expand_slurm_hostlist('node[1-3,5]') == ['node1', 'node2', 'node3', 'node5']
    assert expand_slurm_hostlist('a[01-03]b') == ['a01b', 'a02b', 'a03b']
    assert expand_slurm_hostlist('gpu[08-10],cpu7') == ['gpu08', 'gpu09', 'gpu10', 'cpu7']
    assert expand_slurm_hostlist('r[1-2]n[3,4]') == ['r1n3', 'r1n4', 'r2n3', 'r2n4']
    assert first_slurm_host('single-host.local') == 'single-host.local'
    assert first_slurm_host('n[0-99999999999]') == 'n0'   # lazily: no list of 10^11 names


@pytest.mark.parametrize('value', ['', 'a[1-', 'a]', 'a[x]', 'a[3-1]', 'a,,b', 'a;touch x', '$(touch x)', 'a b'])
def test_malformed_slurm_hostlists_are_errors_naming_the_variable(value):
    from kdzoo.utils.compat import first_slurm_host
    with pytest.raises(ValueError, match='SLURM_NODELIST='):
        first_slurm_host(value)


def test_slurm_env_export_runs_no_command(monkeypatch, tmp_path):
    from kdzoo.utils.compat import _export_slurm_env_for_torch
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '2')
    marker = tmp_path / 'CODE_RAN'
    monkeypatch.setenv('SLURM_NODELIST', f'n1;touch {marker}')
    with pytest.raises(ValueError, match='SLURM_NODELIST'):
        _export_slurm_env_for_torch()
    assert not marker.exists()
    monkeypatch.delenv('SLURM_NODELIST')
    with pytest.raises(RuntimeError, match='SLURM_NODELIST is not set'):
        _export_slurm_env_for_torch()
    monkeypatch.setenv('SLURM_NODELIST', 'gpu[07-09]')
    _export_slurm_env_for_torch()
    assert os.environ['MASTER_ADDR'] == 'gpu07' and os.environ['WORLD_SIZE'] == '2'


@pytest.mark.parametrize('tool', ['train', 'test', 'export'])
def test_trust_flag_says_what_it_means(tool, capsys):
    with pytest.raises(SystemExit):
        load_tool(tool).main(['--help']) if tool != 'train' else load_tool(tool).parse_args(['--help'])
    help_text = ' '.join(capsys.readouterr().out.split())
    assert '--trust-checkpoint unpickle checkpoint files in full (weights_only=False): this RUNS ANY CODE' in help_text
