"""The cells of a benchmark matrix: planning them, deciding which still run, and running one.

A cell is an ordinary ``python -m kdzoo.cli.train CONFIG --work-dir <out>/<pair>/<method>/seed<S>
--cfg-options randomness.seed=S <overrides>`` run in its own process, its full log in ``train.log`` there.
"""
import dataclasses
import fnmatch
import os
import os.path as osp
import re
import shutil
import sys
import time

from . import processes
from .results import cell_record, collect_metrics, last_attempt, parse_teacher_metrics, read_log_lines, \
    read_result, write_json
from .spec import SpecError, format_cfg_value

TRAIN_MODULE = 'kdzoo.cli.train'

@dataclasses.dataclass
class Cell:
    pair: str
    method: str
    seed: int
    config: str
    work_dir: str

    @property
    def id(self):
        return f'{self.pair}/{self.method}/seed{self.seed}'

    @property
    def result_path(self):
        return osp.join(self.work_dir, 'result.json')


def default_out_dir(spec):
    return osp.join('work_dirs', 'benchmarks', spec.name)


def plan_cells(spec, out_dir):
    """Every cell of the matrix, pair by pair, method by method, seed by seed."""
    return [Cell(pair.name, method, seed, osp.abspath(osp.join(pair.dir, f'{method}.py')),
                 osp.abspath(osp.join(out_dir, pair.name, method, f'seed{seed}')))
            for pair in spec.pairs.values() for method in pair.methods for seed in spec.seeds]


def select_cells(cells, patterns):
    """The cells whose id (``pair/method/seedS``) matches one of the shell-style ``patterns``."""
    if not patterns:
        return list(cells)
    return [c for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def is_done(result):
    return bool(result) and result.get('status') == 'ok'


def stale_reason(cell, result, overrides):
    """Why a finished result no longer matches the spec (another config, seed or overrides), or None."""
    if result.get('config') != cell.config:
        return f"it ran {result.get('config')}, the spec now gives {cell.config}"
    if result.get('seed') != cell.seed:
        return f"it ran seed {result.get('seed')}"
    if result.get('overrides') != overrides:
        return f"it ran with overrides {result.get('overrides')}, the spec now gives {overrides}"
    return None


def cells_to_run(cells, spec, force=False):
    """(to run, already done): done cells are skipped unless ``force``; failed or unfinished ones rerun.

    A done cell whose result came from another config, seed or overrides is an error (a table must not mix
    them): the message says to rerun it with --force."""
    if force:
        return list(cells), []
    todo, done, stale = [], [], []
    for cell in cells:
        result = read_result(cell)
        if not is_done(result):
            todo.append(cell)
            continue
        reason = stale_reason(cell, result, spec.cell_overrides(cell))
        (stale.append(f'{cell.id}: {reason}') if reason else done.append(cell))
    if stale:
        raise SpecError(stale + ['rerun these cells with --force (narrow it with --cells), or restore the spec'],
                        source='finished cells that no longer match the spec')
    return todo, done


def has_checkpoint(work_dir):
    """True when mmengine left a checkpoint to resume from (a killed or failed run)."""
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or any(
        f.endswith('.pth') for f in (os.listdir(work_dir) if osp.isdir(work_dir) else []))


def cell_command(cell, spec, resume):
    """The training command line of a cell (``python -m kdzoo.cli.train``, the package's own)."""
    options = [f'randomness.seed={cell.seed}'] + [f'{k}={format_cfg_value(v)}'
                                                  for k, v in spec.cell_overrides(cell).items()]
    command = [sys.executable, '-m', TRAIN_MODULE, cell.config, '--work-dir', cell.work_dir, '--cfg-options', *options]
    return command + (['--resume'] if resume else [])


def run_cell(cell, spec, threads, registry, on_line=None, force=False):
    """Train one cell (resuming from its checkpoint when it has one), write its result.json, return it.

    Returns None when the benchmark is being interrupted: the cell then has no result and is resumed by
    the next run."""
    if force and osp.isdir(cell.work_dir):
        shutil.rmtree(cell.work_dir)
    os.makedirs(cell.work_dir, exist_ok=True)
    resume = has_checkpoint(cell.work_dir)
    log_path = osp.join(cell.work_dir, 'train.log')
    start = time.time()
    returncode, tail = processes.run_logged(cell_command(cell, spec, resume), log_path, processes.child_env(threads),
                                            registry, on_line)
    duration = time.time() - start
    if registry.stopping:
        return None
    lines = last_attempt(read_log_lines(log_path))
    result = cell_record(cell, spec, duration_s=round(duration, 2), returncode=returncode, resumed=resume,
                         finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'))
    if returncode != 0:
        result.update(status='failed', error=exit_error(returncode, tail), log_tail=tail)
    else:
        metrics, error = collect_metrics(cell.work_dir, spec.metrics, lines)
        if error and resume:
            error += '; the run resumed from a finished checkpoint, rerun it with --force'
        result.update(status='failed' if error else 'ok', metrics=metrics,
                      teacher_metrics=parse_teacher_metrics(lines))
        if error:
            result.update(error=error, log_tail=tail)
    write_json(cell.result_path, result)
    return result


EXCEPTION_LINE = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*')


def exit_error(returncode, tail):
    """'kdzoo.cli.train exited with code 1: KeyError: ...' (the last exception line of the log, if any)."""
    message = f'{TRAIN_MODULE} exited with code {returncode}'
    exception = next((line for line in reversed(tail) if EXCEPTION_LINE.match(line)), None)
    return f'{message}: {exception[:300]}' if exception else message
