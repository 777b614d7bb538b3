"""Teachers a benchmark trains before its cells: once each, one job after another, with every core.

A job runs in its own process, ``python -m kdzoo.bench.teachers CONFIG OVERRIDES_JSON``: the same
teacher-first training as the training command, through :func:`kdzoo.tools_support.train_missing_teachers`.
"""
import dataclasses
import json
import os.path as osp
import sys
import time
from typing import Dict

from . import processes
from .progress import format_duration, print_flush
from .results import cell_record

TEACHERS_MODULE = 'kdzoo.bench.teachers'

@dataclasses.dataclass
class TeacherJob:
    """The missing teacher checkpoints of one cell config, trained once by tools_support before any cell."""
    config: str
    checkpoints: Dict[str, str]  # teacher name -> checkpoint path
    teacher_configs: Dict[str, str]
    log_path: str


def load_cell_config(config, overrides):
    from kdzoo.tools_support import load_config
    return load_config(config, dict(overrides))


def missing_teachers(cfg):
    """{teacher name: checkpoint} of the teachers in ``teacher_configs`` whose checkpoint does not exist."""
    missing = {}
    for name in (cfg.get('teacher_configs') or {}):
        checkpoint = cfg.model.get('teachers', {}).get(name, {}).get('checkpoint')
        if checkpoint and not osp.isfile(checkpoint):
            missing[name] = checkpoint
    return missing


def load_configs(cells, overrides):
    """{config path: Config with the overrides, or None when it does not load} for the cells' configs.

    A config that does not load is left to its cells, which fail and record the error."""
    configs = {}
    for config in dict.fromkeys(c.config for c in cells):
        try:
            configs[config] = load_cell_config(config, overrides)
        except Exception:  # noqa: BLE001  (reported by the cell itself)
            configs[config] = None
    return configs


def missing_teachers_of(cfg):
    """:func:`missing_teachers`, or {} for a config that did not load or has no such teachers."""
    try:
        return missing_teachers(cfg) if cfg is not None else {}
    except (AttributeError, KeyError, TypeError):  # a malformed model section: the cell reports it
        return {}


def plan_teacher_jobs(cells, configs, out_dir):
    """One job per config whose teachers are missing, each checkpoint in one job only."""
    jobs, claimed = [], set()
    for config, cfg in configs.items():
        missing = {n: p for n, p in missing_teachers_of(cfg).items() if osp.abspath(p) not in claimed}
        if not missing:
            continue
        claimed.update(osp.abspath(p) for p in missing.values())
        cell = next(c for c in cells if c.config == config)
        jobs.append(TeacherJob(config, missing, {n: cfg.teacher_configs[n] for n in missing},
                               osp.join(out_dir, 'teachers', f'{cell.pair}__{cell.method}.log')))
    return jobs


def teacher_command(job, overrides):
    return [sys.executable, '-m', TEACHERS_MODULE, job.config, json.dumps(overrides)]


def train_teachers_child(config, overrides_json):
    """The job's process (``python -m kdzoo.bench.teachers CONFIG OVERRIDES_JSON``): the teachers that
    CONFIG, with the spec's overrides, names in ``teacher_configs`` and that are missing are trained."""
    import kdzoo  # noqa: F401  (registers everything, mmengine fixes)
    from kdzoo.tools_support import distributed_teardown, train_missing_teachers
    with distributed_teardown():
        train_missing_teachers(load_cell_config(config, json.loads(overrides_json)))


def train_teachers(jobs, spec, registry):
    """Train each job's teachers, one job after another with every core; returns {checkpoint path: job} of
    the checkpoints that are still missing afterwards, with the last lines of their log."""
    failed = {}
    for job in jobs:
        still_missing = {n: p for n, p in job.checkpoints.items() if not osp.isfile(p)}
        if not still_missing:
            continue
        print_flush(f"[benchmark] training teacher(s) {', '.join(f'{n} -> {p}' for n, p in still_missing.items())} "
                    f"with {', '.join(job.teacher_configs.values())}; log: {job.log_path}")
        start = time.time()
        returncode, tail = processes.run_logged(teacher_command(job, spec.overrides), job.log_path,
                                                processes.child_env(processes.threads_per_worker(1)), registry)
        if registry.stopping:
            raise KeyboardInterrupt
        for name, path in still_missing.items():
            if not osp.isfile(path):
                failed[osp.abspath(path)] = (job, tail)
        status = 'done' if returncode == 0 else f'FAILED (exit code {returncode}, see {job.log_path})'
        print_flush(f'[benchmark] teacher training {status} in {format_duration(time.time() - start)}')
    return failed


def blocked_cells(cells, configs, failed_teachers):
    """{cell id: (job, log tail)} of the cells whose config needs a teacher that could not be trained."""
    blocked = {}
    for cell in cells:
        needed = [osp.abspath(p) for p in missing_teachers_of(configs.get(cell.config)).values()]
        hit = next((failed_teachers[p] for p in needed if p in failed_teachers), None)
        if hit:
            blocked[cell.id] = hit
    return blocked


def failed_teacher_record(cell, spec, job, tail):
    return cell_record(cell, spec, status='failed', returncode=None, duration_s=0.0, resumed=False,
                       finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'),
                       error=f"training its teacher(s) {', '.join(job.checkpoints)} failed, see {job.log_path}",
                       log_tail=tail)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit(f'usage: python -m {TEACHERS_MODULE} CONFIG OVERRIDES_JSON (started by the benchmark; '
                 'the command line is tools/benchmark.py)')
    train_teachers_child(*argv)


if __name__ == '__main__':
    main()
