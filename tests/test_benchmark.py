"""tools/benchmark.py and kdzoo.bench: spec validation, resume, atomic results, tables and chart, and a
tiny matrix that really trains (teacher first, two cells in parallel, one failing cell)."""
import json
import os
import os.path as osp
import statistics

import pytest

from kdzoo import bench
from kdzoo.bench import processes, report
from run_helpers import QUICKSTART, run_tool

TINY = ("train_dataloader = dict(batch_size=32, dataset=dict(num_items={items}))\n"
        "val_dataloader = dict(dataset=dict(num_items=100))\n"
        "test_dataloader = dict(dataset=dict(num_items=100))\n"
        "train_cfg = dict(max_epochs=1, val_interval=1)\n"
        "default_hooks = dict(logger=dict(interval=1))\n")


def pair_folder(root, name, methods, text='# a config\n'):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for method in methods:
        (folder / f'{method}.py').write_text(text)
    (folder / '_base.py').write_text('# shared base, not a method\n')
    return folder


def spec_dict(folder, **changes):
    raw = dict(name='demo', metric='accuracy/top1', seeds=[0, 1], methods=['student', 'kd'],
               pairs={'vit-cnn': str(folder)})
    raw.update(changes)
    return raw


def problems_of(raw):
    with pytest.raises(bench.SpecError) as info:
        bench.parse_spec(raw)
    return str(info.value)


# ----------------------------------------------------------------------------------------------- spec

def test_reference_that_no_pair_runs_is_refused_naming_the_fix(tmp_path):
    """Before: a reference absent from the methods gave a silent n/a column and an unlabeled chart gap."""
    folder = pair_folder(tmp_path, 'a', ['kd', 'dkd'])
    message = problems_of(spec_dict(folder, methods=['kd', 'dkd']))
    assert "reference 'student' is not among the methods run (dkd, kd)" in message
    assert 'reference: null' in message


def test_reference_null_gives_no_reference_column(tmp_path):
    folder = pair_folder(tmp_path, 'a', ['kd', 'dkd'])
    spec = bench.parse_spec(spec_dict(folder, methods=['kd', 'dkd'], reference=None))
    assert spec.columns() == ['kd', 'dkd']
    records = [dict(cell=f'vit-cnn/{m}/seed{s}', pair='vit-cnn', method=m, seed=s, status='ok',
                    metrics={'accuracy/top1': 90.0 + s + (m == 'kd')}) for m in ('kd', 'dkd') for s in (0, 1)]
    table = bench.render_markdown(spec, records)
    assert '| pair | teacher | kd | dkd |' in table and '**91.50 ± 0.71**' in table


def test_spec_parses_both_pair_forms_and_plans_every_cell(tmp_path):
    a = pair_folder(tmp_path, 'a', ['student', 'kd', 'dkd'])
    b = pair_folder(tmp_path, 'b', ['student', 'kd'])
    spec = bench.parse_spec(spec_dict(a, methods=['student', 'kd', 'dkd'],
                                      pairs={'a': str(a), 'b': {'dir': str(b), 'methods': ['student', 'kd']}},
                                      extra_metrics=['accuracy/top5'],
                                      overrides={'train_dataloader.dataset.num_items': 1000}))
    assert spec.metrics == ['accuracy/top1', 'accuracy/top5'] and spec.reference == 'student'
    assert spec.pairs['b'].methods == ['student', 'kd'] and spec.columns() == ['student', 'kd', 'dkd']
    cells = bench.plan_cells(spec, str(tmp_path / 'out'))
    assert [c.id for c in cells][:3] == ['a/student/seed0', 'a/student/seed1', 'a/kd/seed0']
    assert len(cells) == 3 * 2 + 2 * 2
    assert cells[0].work_dir == str(tmp_path / 'out' / 'a' / 'student' / 'seed0')
    assert [c.id for c in bench.select_cells(cells, ['b/kd/*', '*/dkd/seed1'])] == [
        'a/dkd/seed1', 'b/kd/seed0', 'b/kd/seed1']


def test_a_missing_method_config_lists_the_valid_names_and_the_fix(tmp_path):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd', 'fitnet'])
    message = problems_of(spec_dict(folder, methods=['student', 'kdd', 'dkd']))
    assert "no config for method(s) kdd, dkd" in message
    assert f"Methods found in {folder}: fitnet, kd, student" in message  # _base.py is not a method
    assert 'methods: [...]' in message  # how to give the pair its own list


def test_bad_keys_seeds_and_a_missing_metric_are_all_reported(tmp_path):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    raw = spec_dict(folder, seed=[0], seeds=[0, -1, 'x', 0, True],
                    pairs={'p': {'dir': str(folder), 'method': ['kd']}, 'bad/name': str(folder)})
    del raw['metric']
    message = problems_of(raw)
    assert "unknown top-level key 'seed'; did you mean 'seeds'?" in message
    assert "unknown key of pair 'p' 'method'; did you mean 'methods'?" in message
    assert "missing required key 'metric'" in message and 'accuracy/top1' in message
    assert "seeds [-1, 'x', True] are not non-negative integers" in message
    assert 'seeds [0] appear more than once' in message
    assert "pair name 'bad/name'" in message
    assert message.startswith('spec: 6 problem(s)')


def test_a_missing_pair_folder_and_empty_seeds_are_errors(tmp_path):
    message = problems_of(spec_dict(tmp_path / 'nowhere', seeds=[]))
    assert 'config folder' in message and 'does not exist' in message
    assert 'seeds []: give a non-empty list' in message


def test_overrides_must_reach_train_py_unchanged(tmp_path):
    from mmengine.config import DictAction
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    message = problems_of(spec_dict(folder, overrides={'a.b': 'two words', 'c': '1000', 'd': {'e': 1},
                                                       'randomness.seed': 3}))
    assert "a.b='two words'" in message and "c='1000'" in message and "d={'e': 1}" in message
    assert "'randomness.seed' is set per cell" in message
    overrides = {'train_dataloader.dataset.num_items': 1000, 'optim_wrapper.optimizer.lr': 1e-05,
                 'model.label_smoothing': 0.1, 'x.flag': False, 'x.none': None, 'x.sizes': [1, 2.5, 'a'],
                 'x.name': 'resnet10t'}
    spec = bench.parse_spec(spec_dict(folder, overrides=overrides))
    cell = bench.plan_cells(spec, str(tmp_path))[0]
    command = bench.cell_command(cell, spec, resume=False)
    assert command[1:5] == ['-m', 'kdzoo.cli.train', cell.config, '--work-dir']  # the package's own entry point
    options = command[command.index('--cfg-options') + 1:]
    assert options[0] == 'randomness.seed=0' and '--resume' not in command
    parsed = {}
    for option in options[1:]:
        key, value = option.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    assert parsed == overrides
    assert '--resume' in bench.cell_command(cell, spec, resume=True)


def test_load_spec_reads_yaml_and_names_the_file(tmp_path):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    path = tmp_path / 'spec.yaml'
    path.write_text(f"name: demo\nmetric: accuracy/top1\nseeds: [0]\nmethods: [student, kd]\n"
                    f"pairs:\n  p: {folder}\n")
    assert bench.load_spec(str(path)).pairs['p'].dir == str(folder)
    path.write_text('name: [unclosed\n')
    with pytest.raises(bench.SpecError, match='not valid YAML'):
        bench.load_spec(str(path))


# --------------------------------------------------------------------------------------------- resume

def fake_result(cell, spec, value, status='ok', teacher=None, **extra):
    record = bench.cell_record(cell, spec, status=status, duration_s=10.0, returncode=0 if status == 'ok' else 1,
                               resumed=False, metrics={spec.metric: value} if status == 'ok' else {},
                               teacher_metrics={'vit': {spec.metric: teacher}} if teacher is not None else {})
    record.update(extra)
    bench.write_json(cell.result_path, record)
    return record


def test_finished_cells_are_skipped_failed_ones_rerun_and_stale_ones_refused(tmp_path):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    spec = bench.parse_spec(spec_dict(folder))
    cells = bench.plan_cells(spec, str(tmp_path / 'out'))
    fake_result(cells[0], spec, 90.0)
    fake_result(cells[1], spec, None, status='failed')
    todo, done = bench.cells_to_run(cells, spec)
    assert [c.id for c in done] == [cells[0].id] and [c.id for c in todo] == [c.id for c in cells[1:]]
    assert len(bench.cells_to_run(cells, spec, force=True)[0]) == len(cells)
    fake_result(cells[2], spec, 91.0, overrides={'train_cfg.max_epochs': 1})
    with pytest.raises(bench.SpecError, match='--force'):
        bench.cells_to_run(cells, spec)


def test_a_rerun_of_a_finished_matrix_starts_nothing_and_writes_the_reports(tmp_path, monkeypatch):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    spec = bench.parse_spec(spec_dict(folder))
    out = tmp_path / 'out'
    for i, cell in enumerate(bench.plan_cells(spec, str(out))):
        fake_result(cell, spec, 90.0 + i, teacher=95.0 if cell.method == 'kd' else None)

    def no_process(*args, **kwargs):
        raise AssertionError('a finished cell was started again')
    monkeypatch.setattr(processes, 'run_logged', no_process)
    records = bench.run_benchmark(spec, str(out), workers=2)
    assert [r['status'] for r in records] == ['ok'] * 4
    assert json.loads((out / 'results.json').read_text())['cells'][3]['metrics'] == {'accuracy/top1': 93.0}
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]


def fake_training(work_dir, metrics, teacher_line=True):
    """What tools/train.py leaves behind: a timestamped scalars.json and log lines."""
    os.makedirs(osp.join(work_dir, '20260101_000000', 'vis_data'))
    with open(osp.join(work_dir, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.write(json.dumps({'lr': 0.001, 'loss': 2.3, 'epoch': 1, 'iter': 5, 'step': 5}) + '\n')
        f.write(json.dumps({**metrics, 'data_time': 0.01, 'time': 0.04, 'step': 1}) + '\n')
    lines = ['11/22 13:47:47 - mmengine - INFO - Epoch(train) [1][5/5]  lr: 2.0000e-04  loss: 2.3000']
    if teacher_line:
        lines.insert(0, "11/22 13:47:40 - mmengine - INFO - teacher 'vit' on the validation set: "
                        "accuracy/top1: 97.1234, accuracy/top5: 99.5000")
    return lines


def test_a_killed_cell_resumes_from_its_checkpoint_and_records_its_result(tmp_path, monkeypatch):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    spec = bench.parse_spec(spec_dict(folder, extra_metrics=['accuracy/top5']))
    cell = next(c for c in bench.plan_cells(spec, str(tmp_path / 'out')) if c.method == 'kd')
    os.makedirs(cell.work_dir)
    open(osp.join(cell.work_dir, 'last_checkpoint'), 'w').write(osp.join(cell.work_dir, 'epoch_1.pth'))
    seen = {}

    def fake_run(command, log_path, env, registry, on_line=None):
        seen.update(command=command, threads=env['OMP_NUM_THREADS'])
        with open(log_path, 'a') as log:
            log.write('===== kdzoo benchmark, now: train\n')
            log.write('\n'.join(fake_training(cell.work_dir, {'accuracy/top1': 88.25, 'accuracy/top5': 99.0})))
        return 0, []
    monkeypatch.setattr(processes, 'run_logged', fake_run)
    result = bench.run_cell(cell, spec, threads=3, registry=bench.ProcessRegistry())
    assert '--resume' in seen['command'] and seen['threads'] == '3'
    assert result['status'] == 'ok' and result['resumed'] is True
    assert result['metrics'] == {'accuracy/top1': 88.25, 'accuracy/top5': 99.0}
    assert result['teacher_metrics'] == {'vit': {'accuracy/top1': 97.1234, 'accuracy/top5': 99.5}}
    assert bench.read_result(cell) == result


def test_a_shared_missing_teacher_is_trained_once_and_its_failure_fails_only_its_cells(tmp_path, monkeypatch):
    checkpoint = tmp_path / 'teachers' / 'vit.safetensors'
    distill = (f"model = dict(teachers=dict(vit=dict(checkpoint={str(checkpoint)!r})))\n"
               "teacher_configs = dict(vit='teacher.py')\n")
    folder = pair_folder(tmp_path, 'p', ['kd', 'dkd'], text=distill)
    (folder / 'student.py').write_text('model = dict()\n')
    spec = bench.parse_spec(spec_dict(folder, methods=['student', 'kd', 'dkd'], seeds=[0]))
    cells = bench.plan_cells(spec, str(tmp_path / 'out'))
    configs = bench.load_configs(cells, spec.overrides)
    jobs = bench.plan_teacher_jobs(cells, configs, str(tmp_path / 'out'))
    assert len(jobs) == 1 and jobs[0].checkpoints == {'vit': str(checkpoint)}
    commands = []

    def fake_run(command, log_path, env, registry, on_line=None):
        commands.append(command)
        if 'kdzoo.bench.teachers' in command:
            return 1, ['RuntimeError: the teacher config is broken']
        student = next(c for c in cells if c.method == 'student')
        with open(log_path, 'a') as log:
            log.write('\n'.join(fake_training(student.work_dir, {'accuracy/top1': 50.0}, teacher_line=False)))
        return 0, []
    monkeypatch.setattr(processes, 'run_logged', fake_run)
    records = {r['cell']: r for r in bench.run_benchmark(spec, str(tmp_path / 'out'), workers=2)}
    assert len(commands) == 2 and 'kdzoo.bench.teachers' in commands[0]  # one teacher job, then only the student
    assert records['vit-cnn/student/seed0']['status'] == 'ok'
    for method in ('kd', 'dkd'):
        failed = records[f'vit-cnn/{method}/seed0']
        assert failed['status'] == 'failed' and 'training its teacher(s) vit failed' in failed['error']
        assert failed['log_tail'] == ['RuntimeError: the teacher config is broken']


def test_a_metric_the_run_does_not_report_fails_the_cell_naming_the_reported_keys(tmp_path):
    lines = fake_training(str(tmp_path), {'orl/acc': 0.95, 'orl/tpr@fpr=1e-2': 0.8})
    metrics, error = bench.collect_metrics(str(tmp_path), ['orl/acc', 'orl/tpr@fpr=1e-3'], lines)
    assert metrics == {} and 'orl/tpr@fpr=1e-3 not found' in error and 'orl/acc, orl/tpr@fpr=1e-2' in error
    assert bench.collect_metrics(str(tmp_path), ['orl/acc', 'orl/tpr@fpr=1e-2'], lines) == (
        {'orl/acc': 0.95, 'orl/tpr@fpr=1e-2': 0.8}, None)


def test_log_parsing_val_lines_summary_fallback_and_progress():
    val = ['11/22 - mmengine - INFO - Epoch(val) [1][1/1]    eta: 0:00:00  time: 0.0440  data_time: 0.0114',
           '11/22 - mmengine - INFO - Epoch(val) [1][1/1]    accuracy/top1: 8.0000  data_time: 0.0114  time: 0.0440']
    assert bench.parse_val_line_metrics(val, 'accuracy/top1')['accuracy/top1'] == 8.0
    summary = ['11/22 - mmengine - INFO - kdzoo summary: teacher vit accuracy/top1: 12.00; teacher cnn '
               'accuracy/top1: 30.50; student accuracy/top1: 8.00']
    assert bench.parse_teacher_metrics(summary) == {'vit': {'accuracy/top1': 12.0}, 'cnn': {'accuracy/top1': 30.5}}
    assert bench.train_position('INFO - Epoch(train) [3][ 10/16]  lr: 1e-3') == 'epoch 3 [10/16]'
    assert bench.train_position('INFO - Iter(train) [ 100/1000]  lr: 1e-3') == 'iter 100/1000'
    assert bench.train_position('INFO - Epoch(val) [1][1/1]') is None
    assert bench.exit_error(1, ['Traceback (most recent call last):', '  File "x"',
                                'RuntimeError: boom']) == 'kdzoo.cli.train exited with code 1: RuntimeError: boom'


# ------------------------------------------------------------------------------------ atomic writing

def test_an_exception_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'results.json'
    bench.write_json(str(path), {'cells': [1]})

    def half_then_fail(f):
        f.write('{"cells": [1, 2')
        raise RuntimeError('disk full')
    with pytest.raises(RuntimeError, match='disk full'):
        bench.atomic_write(str(path), half_then_fail)
    assert json.loads(path.read_text()) == {'cells': [1]}
    assert os.listdir(tmp_path) == ['results.json']


def test_a_failing_report_writer_leaves_no_half_written_file(tmp_path, monkeypatch):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd'])
    spec = bench.parse_spec(spec_dict(folder))
    records = [fake_result(c, spec, 90.0) for c in bench.plan_cells(spec, str(tmp_path / 'out'))]
    out = tmp_path / 'reports'

    def broken_csv(spec, records):
        raise ValueError('bad record')
    monkeypatch.setattr(report, 'csv_text', broken_csv)
    with pytest.raises(ValueError):
        bench.write_reports(str(out), spec, records)
    assert sorted(os.listdir(out)) == ['results.json']  # whole; the csv was never half-written


# ---------------------------------------------------------------------------------- tables and chart

@pytest.fixture
def fixture_results(tmp_path):
    """2 pairs x 3 seeds; pair 'b' runs no dkd; one failed and one missing cell; results.json on disk."""
    a = pair_folder(tmp_path, 'a', ['student', 'kd', 'dkd'])
    b = pair_folder(tmp_path, 'b', ['student', 'kd'])
    spec = bench.parse_spec(dict(name='fixture', metric='accuracy/top1', seeds=[0, 1, 2],
                                 methods=['student', 'kd', 'dkd'],
                                 pairs={'a': str(a), 'b': {'dir': str(b), 'methods': ['student', 'kd']}}))
    values = {('a', 'student'): [90.0, 91.0, 92.5], ('a', 'kd'): [93.0, 94.0, 92.0],
              ('a', 'dkd'): [94.5, 95.25, None], ('b', 'student'): [80.0, 81.0, 82.0],
              ('b', 'kd'): [79.0, 'missing', 'failed']}
    teachers = {'a': 97.5, 'b': 88.0}
    out = tmp_path / 'out'
    cells = bench.plan_cells(spec, str(out))
    for cell in cells:
        value = values[cell.pair, cell.method][cell.seed]
        if value == 'missing':
            continue
        if value is None or value == 'failed':
            fake_result(cell, spec, None, status='failed', error='kdzoo.cli.train exited with code 1')
        else:
            fake_result(cell, spec, value, teacher=teachers[cell.pair] if cell.method != 'student' else None)
    records = bench.all_records(spec, cells)
    bench.write_json(str(tmp_path / 'fixture.json'), bench.results_document(spec, records))
    return spec, values, teachers, tmp_path / 'fixture.json'


def mean_std(values):
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def test_markdown_tables_show_mean_std_reference_rows_and_the_best_method_in_bold(fixture_results, tmp_path):
    spec, values, teachers, fixture = fixture_results
    records = json.loads(fixture.read_text())['cells']
    paths = bench.write_reports(str(tmp_path / 'report'), spec, records)
    markdown = open(paths['md']).read()
    rows = {line.split(' | ')[0][2:]: [c.strip() for c in line.strip('| \n').split(' | ')]
            for line in markdown.splitlines() if line.startswith('| ') and not line.startswith('| pair')}
    assert '| pair | teacher | student | kd | dkd |' in markdown
    assert rows['a'] == ['a', f"{teachers['a']:.2f} ± 0.00", mean_std(values['a', 'student']),
                         mean_std(values['a', 'kd']), f"**{mean_std([94.5, 95.25])} (n=2, 1 failed)**"]
    assert rows['b'] == ['b', f"{teachers['b']:.2f} (n=1)", mean_std(values['b', 'student']),
                         '**79.00 (n=1, 1 failed, 1 missing)**', 'n/a']
    assert '- b/kd/seed2: kdzoo.cli.train exited with code 1' in markdown
    assert '15 cells: 12 ok, 2 failed, 1 not run' in markdown


def test_csv_json_and_png_are_written(fixture_results, tmp_path):
    import csv

    import matplotlib.image
    spec, values, _, fixture = fixture_results
    records = json.loads(fixture.read_text())['cells']
    paths = bench.write_reports(str(tmp_path / 'report'), spec, records)
    rows = list(csv.DictReader(open(paths['csv'])))
    assert len(rows) == len(records) == 15
    kd_a0 = next(r for r in rows if r['cell'] == 'a/kd/seed0')
    assert float(kd_a0['accuracy/top1']) == 93.0 and float(kd_a0['teacher/vit/accuracy/top1']) == 97.5
    assert next(r for r in rows if r['cell'] == 'b/kd/seed1')['status'] == 'missing'
    assert json.loads(open(paths['json']).read())['cells'] == records
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    image = matplotlib.image.imread(paths['png'])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_only_rewrites_the_reports_from_the_cells(fixture_results, tmp_path):
    spec, _, _, _ = fixture_results
    spec_path = tmp_path / 'spec.yaml'
    import yaml
    spec_path.write_text(yaml.safe_dump(dict(name='fixture', metric='accuracy/top1', seeds=[0, 1, 2],
                                             methods=['student', 'kd', 'dkd'],
                                             pairs={'a': spec.pairs['a'].dir,
                                                    'b': {'dir': spec.pairs['b'].dir, 'methods': ['student', 'kd']}})))
    import importlib.util
    loader = importlib.util.spec_from_file_location('benchmark_cli', osp.join(bench.ROOT, 'tools', 'benchmark.py'))
    cli = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(cli)
    assert cli.main([str(spec_path), '--out-dir', str(tmp_path / 'out'), '--report-only']) == 0
    assert '**' in (tmp_path / 'out' / 'results.md').read_text()
    assert cli.main([str(spec_path), '--out-dir', str(tmp_path / 'out'), '--dry-run']) == 0
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\nmetric: accuracy/top1\nseeds: [0]\nmethods: [kdd]\n'
                   f"pairs: {{a: {spec.pairs['a'].dir}}}\n")
    assert cli.main([str(bad), '--dry-run']) == 2


# ------------------------------------------------------------------------------- a matrix that trains

@pytest.mark.slow
def test_a_tiny_matrix_trains_its_teacher_first_runs_in_parallel_records_a_failure_and_resumes(tmp_path, capsys):
    pair = tmp_path / 'tiny'
    pair.mkdir()
    teacher = tmp_path / 'teachers' / 'vit.safetensors'
    (pair / '_teacher.py').write_text(f"_base_ = [{osp.join(QUICKSTART, 'vit_teacher.py')!r}]\n" +
                                      TINY.format(items=128))
    (pair / 'student.py').write_text(f"_base_ = [{osp.join(QUICKSTART, 'student_only.py')!r}]\n" +
                                     TINY.format(items=160))
    (pair / 'kd.py').write_text(f"_base_ = [{osp.join(QUICKSTART, 'kd.py')!r}]\n" + TINY.format(items=160) +
                                f"model = dict(teachers=dict(vit=dict(checkpoint={str(teacher)!r})))\n"
                                f"teacher_configs = dict(vit={str(pair / '_teacher.py')!r})\n")
    (pair / 'broken.py').write_text("raise RuntimeError('this config is broken on purpose')\n")
    spec = tmp_path / 'spec.yaml'
    spec.write_text(f"name: tiny\nmetric: accuracy/top1\nseeds: [0]\nmethods: [student, kd, broken]\n"
                    f"overrides:\n  val_dataloader.dataset.num_items: 64\npairs:\n  tiny: {pair}\n")
    out = tmp_path / 'out'
    rc, log = run_tool('tools/benchmark.py', str(spec), '--out-dir', str(out), '--workers', '2',
                       '--progress-interval', '2')
    assert rc == 1, log[-3000:]
    assert 'training teacher(s) vit' in log and teacher.is_file()
    assert 'tiny/broken/seed0: FAILED (kdzoo.cli.train exited with code 1: RuntimeError: this config is broken' in log
    assert 'cells done' in log and 'ETA' in log
    results = {r['cell']: r for r in json.loads((out / 'results.json').read_text())['cells']}
    student, kd, broken = results['tiny/student/seed0'], results['tiny/kd/seed0'], results['tiny/broken/seed0']
    assert student['status'] == kd['status'] == 'ok' and broken['status'] == 'failed'
    assert broken['returncode'] == 1 and len(broken['log_tail']) <= 30
    assert 0 <= kd['metrics']['accuracy/top1'] <= 100
    assert set(kd['teacher_metrics']) == {'vit'} and student['teacher_metrics'] == {}
    kd_log = (out / 'tiny' / 'kd' / 'seed0' / 'train.log').read_text()
    assert 'trained first' not in kd_log and "teacher 'vit' on the validation set" in kd_log
    assert 'val_dataloader.dataset.num_items=64' in kd_log and 'randomness.seed=0' in kd_log
    for name in ('results.json', 'results.csv', 'results.md', 'results.png'):
        assert (out / name).is_file()
    assert '| tiny |' in (out / 'results.md').read_text()

    capsys.readouterr()
    records = bench.run_benchmark(bench.load_spec(str(spec)), str(out), patterns=['tiny/student/*', 'tiny/kd/*'])
    assert [r['status'] for r in records] == ['ok', 'ok']
    log = capsys.readouterr().out
    assert '2 cells, 2 already done, 0 to run' in log and 'training teacher' not in log


def test_teacher_cache_methods_share_one_cache_per_pair_across_methods_and_seeds(tmp_path):
    folder = pair_folder(tmp_path, 'p', ['student', 'kd', 'dkd'])
    spec = bench.parse_spec(spec_dict(folder, methods=['student', 'kd', 'dkd'],
                                      teacher_cache=dict(methods=['kd', 'dkd'], dtype='fp16')))
    options = {cell.id: bench.cell_command(cell, spec, resume=False) for cell in bench.plan_cells(spec, str(tmp_path))}
    cache_dir = osp.join(str(tmp_path), 'teacher_caches', 'vit-cnn')
    for cell_id, command in options.items():
        has_cache = f'model.teacher_cache.path={cache_dir}' in command
        assert has_cache == (not cell_id.split('/')[1] == 'student'), cell_id
        assert ('model.teacher_cache.dtype=fp16' in command) == has_cache
        assert ('model.teacher_cache.views=1' in command) == has_cache
    message = problems_of(spec_dict(folder, teacher_cache=dict(views=2, colour='red')))
    assert "teacher_cache: name the methods" in message and "'colour'" in message


def test_the_old_module_name_warns_and_re_exports_the_package():
    import importlib
    import sys
    sys.modules.pop('kdzoo.benchmark', None)
    with pytest.warns(DeprecationWarning, match='kdzoo.benchmark moved to kdzoo.bench'):
        old = importlib.import_module('kdzoo.benchmark')
    assert all(getattr(old, name) is getattr(bench, name) for name in bench.__all__)
    assert old.run_benchmark is bench.run.run_benchmark and old.SpecError is bench.spec.SpecError
