"""Benchmark matrices: (teacher-student pair x method x seed), each cell an ordinary tools/train.py run.

``tools/benchmark.py SPEC`` is the command line; this module holds what it is built of, importable for
tests: spec parsing and validation, cell planning, teacher pre-training, running one cell, reading its
results, and writing the aggregate results (json, csv, markdown tables, a bar chart).

The spec (YAML)::

    name: mnist_hetero                # results go to work_dirs/benchmarks/<name>/ unless --out-dir
    metric: accuracy/top1             # key as mmengine reports it (val results); face configs: orl/acc
    extra_metrics: [orl/tpr@fpr=1e-2] # optional, further keys collected and tabulated
    lower_is_better: []               # optional, metric keys where the smallest mean is the best
    seeds: [0, 1, 2]                  # randomness.seed of each run; non-negative, distinct integers
    overrides:                        # optional --cfg-options for every cell (not for teacher training)
      train_dataloader.dataset.num_items: 1000
    teacher_cache:                    # optional: these methods read their teacher's outputs from one cache per
      methods: [kd, dkd, dist]        # pair, <out>/teacher_caches/<pair>, shared across methods and seeds
      views: 1                        # (docs/teacher_cache.md); also dtype (fp32/fp16), topk, seed
    reference: student                # optional (default 'student'): the method trained without a teacher;
                                      # it must be run by some pair; null: no reference column
    methods: [student, kd, dkd]       # method m of pair p runs <pair dir>/<m>.py
    pairs:                            # name -> folder of configs, or {dir: ..., methods: [...]}
      vit-resnet: configs/benchmarks/mnist/vit-resnet
      cnn-vit: {dir: configs/benchmarks/mnist/cnn-vit, methods: [student, kd]}

Every (pair, method) must have its config file; a pair that runs fewer methods says so with its own
``methods`` list (its table cells then read ``n/a``). Relative paths are taken from the current
directory, which is also where the cells run (so that the configs' relative teacher paths hold).

Layout of the output folder::

    <out>/<pair>/<method>/seed<S>/   a cell's work dir: train.log (every attempt), checkpoints, mmengine
                                     logs, result.json once the cell has finished (ok or failed)
    <out>/teachers/*.log             logs of the teachers trained before the cells
    <out>/results.{json,csv,md,png}  the aggregate, rewritten after every cell

Results are read from what a run really writes: the student's metrics from the last validation record in
``<work dir>/<timestamp>/vis_data/scalars.json`` (the newest run that has one; the ``Epoch(val)`` log
line is the fallback), the teachers' from ``TeacherEvalHook``'s line ``teacher 'NAME' on the validation
set: KEY: VALUE, ...`` (4 decimals; the ``kdzoo summary:`` line is the fallback).
"""
import csv
import dataclasses
import difflib
import fnmatch
import io
import json
import math
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Callable, Dict, List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_SCRIPT = osp.join(ROOT, 'tools', 'train.py')

SPEC_KEYS = ('name', 'metric', 'extra_metrics', 'lower_is_better', 'seeds', 'overrides', 'reference',
             'methods', 'pairs', 'teacher_cache')
CACHE_SPEC_KEYS = ('methods', 'views', 'dtype', 'topk', 'seed')
REQUIRED_KEYS = ('name', 'metric', 'seeds', 'pairs')
PAIR_KEYS = ('dir', 'methods')
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]*$')
LOG_TAIL_LINES = 30


class SpecError(ValueError):
    """A benchmark spec that cannot run; the message lists every problem and how to fix it."""

    def __init__(self, problems, source='spec'):
        self.problems = list(problems)
        super().__init__(f'{source}: {len(self.problems)} problem(s):\n' +
                         '\n'.join(f'  - {p}' for p in self.problems))


@dataclasses.dataclass
class Pair:
    name: str
    dir: str
    methods: List[str]


@dataclasses.dataclass
class Spec:
    name: str
    metric: str
    seeds: List[int]
    pairs: Dict[str, Pair]
    methods: List[str]
    extra_metrics: List[str] = dataclasses.field(default_factory=list)
    lower_is_better: List[str] = dataclasses.field(default_factory=list)
    overrides: Dict[str, object] = dataclasses.field(default_factory=dict)
    reference: str = 'student'
    teacher_cache: Dict[str, object] = dataclasses.field(default_factory=dict)

    def cell_overrides(self, cell):
        """The --cfg-options of a cell: the spec's overrides, plus its teacher cache when its method uses one."""
        overrides = dict(self.overrides)
        if cell.method in self.teacher_cache.get('methods', ()):
            out_dir = osp.dirname(osp.dirname(osp.dirname(cell.work_dir)))
            overrides['model.teacher_cache.path'] = osp.join(out_dir, 'teacher_caches', cell.pair)
            overrides.update({f'model.teacher_cache.{k}': v for k, v in self.teacher_cache.items() if k != 'methods'})
        return overrides

    @property
    def metrics(self):
        return [self.metric] + self.extra_metrics

    def columns(self):
        """Table columns after 'teacher': the reference, then every method in the order the spec names them."""
        methods = list(self.methods)
        for pair in self.pairs.values():
            methods += [m for m in pair.methods if m not in methods]
        if self.reference is None:
            return methods
        return [self.reference] + [m for m in methods if m != self.reference]


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


# ----------------------------------------------------------------------------------------------- spec

def load_spec(path):
    """Read and validate a YAML spec; raises :class:`SpecError` naming every problem."""
    import yaml
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise SpecError([f'cannot read the spec: {e}'], source=path) from None
    except yaml.YAMLError as e:
        raise SpecError([f'not valid YAML: {e}'], source=path) from None
    return parse_spec(raw, source=path)


def parse_spec(raw, source='spec'):
    """A :class:`Spec` from the spec's mapping, after checking everything that can be checked up front."""
    if not isinstance(raw, dict):
        raise SpecError([f'the spec must be a mapping with keys {", ".join(SPEC_KEYS)}; got {type(raw).__name__}'],
                        source)
    problems = unknown_key_problems(raw, SPEC_KEYS, 'top-level key')
    problems += [f"missing required key '{k}' ({KEY_HELP[k]})" for k in REQUIRED_KEYS if k not in raw]
    name = raw.get('name')
    if 'name' in raw and not (isinstance(name, str) and NAME_PATTERN.match(name)):
        problems.append(f"name {name!r}: use letters, digits and _ . + - (it names the output folder)")
    metrics = check_metrics(raw, problems)
    seeds = check_seeds(raw.get('seeds'), problems) if 'seeds' in raw else []
    overrides = check_overrides(raw.get('overrides') or {}, problems)
    reference = raw.get('reference', 'student')
    if reference is not None and not (isinstance(reference, str) and NAME_PATTERN.match(reference)):
        problems.append(f'reference {reference!r}: give the method name of the run without a teacher')
    methods = check_method_list(raw.get('methods'), 'methods', problems) if 'methods' in raw else []
    pairs = parse_pairs(raw.get('pairs'), methods, problems) if 'pairs' in raw else {}
    problems += reference_problems(reference, methods, pairs)
    problems += missing_config_problems(pairs)
    teacher_cache = check_teacher_cache(raw.get('teacher_cache') or {}, problems)
    if problems:
        raise SpecError(problems, source)
    return Spec(name=name, metric=metrics[0], extra_metrics=metrics[1], seeds=seeds, pairs=pairs,
                methods=methods, lower_is_better=metrics[2], overrides=overrides, reference=reference,
                teacher_cache=teacher_cache)


def check_teacher_cache(cache, problems):
    """``teacher_cache``: ``methods`` (a list) and the cache settings of model.teacher_cache, views by default 1."""
    if not isinstance(cache, dict):
        problems.append(f'teacher_cache {cache!r}: give a mapping such as {{methods: [kd, dkd], views: 1}}')
        return {}
    if not cache:
        return {}
    problems += unknown_key_problems(cache, CACHE_SPEC_KEYS, 'teacher_cache key')
    if 'methods' not in cache:
        problems.append('teacher_cache: name the methods that read the cache, e.g. methods: [kd, dkd, dist]')
    else:
        check_method_list(cache['methods'], 'teacher_cache.methods', problems)
    return {'views': 1, **cache}


def reference_problems(reference, methods, pairs):
    """The reference column must be a method that some pair runs (else it would be an unlabeled n/a gap)."""
    run = set(methods).union(*(pair.methods for pair in pairs.values())) if pairs else set(methods)
    if reference is None or not (methods or pairs) or reference in run:
        return []
    return [f"reference {reference!r} is not among the methods run ({', '.join(sorted(run))}): add it to "
            "`methods` (the run without a teacher that the others are compared with), name one of those "
            "methods with `reference:`, or set `reference: null` for no reference column"]


KEY_HELP = {
    'name': 'names the output folder work_dirs/benchmarks/<name>',
    'metric': "the metric key as the runs report it, e.g. 'accuracy/top1' or 'orl/acc'",
    'seeds': 'a list of integer seeds, e.g. [0, 1, 2]',
    'pairs': 'pair name -> folder of method configs',
}


def unknown_key_problems(mapping, allowed, what):
    problems = []
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ''
            problems.append(f"unknown {what} {key!r}{hint} (allowed: {', '.join(allowed)})")
    return problems


def check_metrics(raw, problems):
    """(metric, extra_metrics, lower_is_better), each problem appended to ``problems``."""
    metric = raw.get('metric')
    if 'metric' in raw and not (isinstance(metric, str) and metric.strip()):
        problems.append(f"metric {metric!r}: give the key as a string, e.g. 'accuracy/top1'")
    lists = []
    for key in ('extra_metrics', 'lower_is_better'):
        value = raw.get(key) or []
        if not (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)):
            problems.append(f'{key} {value!r}: give a list of metric keys')
            value = []
        if len(set(value)) != len(value):
            problems.append(f'{key} lists a key twice: {value}')
        lists.append(value)
    extra, lower = lists
    if metric in extra:
        problems.append(f"extra_metrics repeats the main metric {metric!r}; list only further keys")
    unknown = [k for k in lower if k != metric and k not in extra]
    if unknown:
        problems.append(f'lower_is_better names keys that are neither metric nor extra_metrics: {unknown}')
    return metric, extra, lower


def check_seeds(seeds, problems):
    if not isinstance(seeds, list) or not seeds:
        problems.append(f'seeds {seeds!r}: give a non-empty list of integers, e.g. [0, 1, 2]')
        return []
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        problems.append(f'seeds {bad!r} are not non-negative integers; seeds must look like [0, 1, 2]')
    duplicated = sorted({s for s in seeds if seeds.count(s) > 1 and s not in bad})
    if duplicated:
        problems.append(f'seeds {duplicated} appear more than once; each seed runs once per cell')
    return [s for s in seeds if s not in bad and s not in duplicated] if (bad or duplicated) else list(seeds)


def check_method_list(methods, where, problems):
    if not isinstance(methods, list) or not methods:
        problems.append(f"{where} {methods!r}: give a non-empty list of method names, e.g. [student, kd]")
        return []
    bad = [m for m in methods if not (isinstance(m, str) and NAME_PATTERN.match(m))]
    if bad:
        problems.append(f'{where}: {bad!r} are not method names (a method m runs <pair dir>/m.py)')
    duplicated = sorted({m for m in methods if methods.count(m) > 1 and m not in bad})
    if duplicated:
        problems.append(f'{where}: {duplicated} listed more than once')
    return [m for m in methods if m not in bad]


def check_overrides(overrides, problems):
    """The overrides, once each is known to reach tools/train.py unchanged through ``--cfg-options``."""
    if not isinstance(overrides, dict):
        problems.append(f'overrides {overrides!r}: give a mapping of dotted config keys to values')
        return {}
    for key, value in overrides.items():
        if not (isinstance(key, str) and key and ' ' not in key and '=' not in key):
            problems.append(f'overrides: {key!r} is not a dotted config key such as train_cfg.max_epochs')
        elif key == 'randomness.seed':
            problems.append("overrides: 'randomness.seed' is set per cell from 'seeds'; remove it")
        elif not round_trips(value):
            problems.append(f'overrides: {key}={value!r} would not reach the config unchanged through '
                            f'--cfg-options (numbers, booleans, null, plain strings without spaces or commas, '
                            f'and lists of these are supported; set nested keys with dotted names)')
    return dict(overrides)


def format_cfg_value(value):
    """How ``value`` is written after ``key=`` on tools/train.py's ``--cfg-options``."""
    if isinstance(value, (list, tuple)):
        inner = ','.join(format_cfg_value(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    if value is None:
        return 'None'
    return str(value) if isinstance(value, (bool, str)) else repr(value)


def round_trips(value):
    """True when mmengine's DictAction reads ``format_cfg_value(value)`` back as ``value``, types included."""
    from mmengine.config import DictAction
    if isinstance(value, dict):
        return False
    try:
        return same_value(DictAction._parse_iterable(format_cfg_value(value)), value)
    except (AssertionError, ValueError):
        return False


def same_value(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def parse_pairs(pairs, methods, problems):
    if not isinstance(pairs, dict) or not pairs:
        problems.append(f'pairs {pairs!r}: give a mapping of pair name -> config folder (or {{dir, methods}})')
        return {}
    parsed = {}
    for name, entry in pairs.items():
        if not (isinstance(name, str) and NAME_PATTERN.match(name)):
            problems.append(f'pair name {name!r}: use letters, digits and _ . + - (it names a folder)')
            continue
        if isinstance(entry, dict):
            problems += unknown_key_problems(entry, PAIR_KEYS, f'key of pair {name!r}')
            folder = entry.get('dir')
            pair_methods = (check_method_list(entry['methods'], f'pairs.{name}.methods', problems)
                            if 'methods' in entry else methods)
        else:
            folder, pair_methods = entry, methods
        if not isinstance(folder, str) or not folder:
            problems.append(f'pair {name!r}: give its config folder as a string (or {{dir: FOLDER}})')
            continue
        if not osp.isdir(folder):
            problems.append(f'pair {name!r}: config folder {folder} does not exist (relative paths are taken '
                            f'from the current directory, {os.getcwd()})')
            continue
        if not pair_methods:
            problems.append(f"pair {name!r} has no methods: give top-level 'methods' or pairs.{name}.methods")
            continue
        parsed[name] = Pair(name, folder, pair_methods)
    return parsed


def available_methods(folder):
    """Method names a pair folder offers: its ``*.py`` files not starting with ``_`` (bases)."""
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith('.py') and not f.startswith('_'))


def missing_config_problems(pairs):
    problems = []
    for pair in pairs.values():
        missing = [m for m in pair.methods if not osp.isfile(osp.join(pair.dir, f'{m}.py'))]
        if missing:
            problems.append(
                f"pair {pair.name!r}: no config for method(s) {', '.join(missing)} "
                f"(expected {', '.join(osp.join(pair.dir, m + '.py') for m in missing)}). Methods found in "
                f"{pair.dir}: {', '.join(available_methods(pair.dir)) or 'none'}. Fix the name, add the config, "
                f"or give the pair its own list: pairs: {{{pair.name}: {{dir: {pair.dir}, methods: [...]}}}}")
    return problems


# --------------------------------------------------------------------------------------------- cells

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


def read_result(cell):
    """The cell's result.json, or None when the cell has not finished (or the file is unreadable)."""
    try:
        with open(cell.result_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


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
    """The tools/train.py command line of a cell."""
    options = [f'randomness.seed={cell.seed}'] + [f'{k}={format_cfg_value(v)}'
                                                  for k, v in spec.cell_overrides(cell).items()]
    command = [sys.executable, TRAIN_SCRIPT, cell.config, '--work-dir', cell.work_dir, '--cfg-options', *options]
    return command + (['--resume'] if resume else [])


def threads_per_worker(workers):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(1, cpus // max(1, workers))


def child_env(threads):
    """The environment of a child run: ``threads`` OpenMP/MKL threads, unbuffered output, kdzoo importable.

    OpenMP threads wait passively (unless OMP_WAIT_POLICY is set): on cores shared with other processes,
    spinning threads made a 2-thread CPU run 15x slower in this project's measurements."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return env


# ------------------------------------------------------------------------------------ atomic writing

def atomic_write(path, write: Callable, binary=False):
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename it into place.

    Readers see the old file or the whole new one, never a half-written one; on an exception the
    temporary file is removed and the old file stays."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp')
    try:
        with open(tmp, 'wb' if binary else 'w', **({} if binary else {'newline': ''})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path, data):
    return atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, allow_nan=True) + '\n'))


# ------------------------------------------------------------------------------------ child processes

class ProcessRegistry:
    """The subprocesses this benchmark started, so that an interrupt ends exactly these."""

    def __init__(self):
        self._lock = threading.Lock()
        self._procs = set()
        self.stopping = False

    def add(self, proc):
        with self._lock:
            if self.stopping:
                proc.terminate()
            self._procs.add(proc)

    def discard(self, proc):
        with self._lock:
            self._procs.discard(proc)

    def terminate_all(self, grace_s=10):
        with self._lock:
            self.stopping = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + grace_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


def end_process(proc, grace_s=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_logged(command, log_path, env, registry, on_line=None):
    """Run ``command``, appending its combined output to ``log_path``; returns (return code, last lines)."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    tail = deque(maxlen=LOG_TAIL_LINES)
    with open(log_path, 'a') as log:
        log.write(f"\n===== kdzoo benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, text=True, errors='replace', bufsize=1)
        registry.add(proc)
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip('\n'))
                if on_line:
                    on_line(line)
            returncode = proc.wait()
        except BaseException:
            end_process(proc)
            raise
        finally:
            registry.discard(proc)
    return returncode, list(tail)


# ------------------------------------------------------------------------------------------- teachers

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
    return [sys.executable, '-m', 'kdzoo.benchmark', 'train-teachers', job.config, json.dumps(overrides)]


def train_teachers_child(config, overrides_json):
    """Child process entry (``python -m kdzoo.benchmark train-teachers CONFIG OVERRIDES``): the same
    teacher-first training as tools/train.py, through :func:`kdzoo.tools_support.train_missing_teachers`."""
    import kdzoo  # noqa: F401  (registers everything, mmengine fixes)
    from kdzoo.tools_support import distributed_teardown, train_missing_teachers
    with distributed_teardown():
        train_missing_teachers(load_cell_config(config, json.loads(overrides_json)))


# ------------------------------------------------------------------------------------ reading results

TEACHER_LINE = re.compile(r"teacher '([^']+)' on the validation set: (.*)$")
SUMMARY_TEACHER = re.compile(r'teacher (\S+) (\S+): (\S+)$')
VAL_LINE = re.compile(r'(?:Epoch|Iter)\(val\)\s*(?:\[\s*\d+\])?\[\s*\d+/\d+\]\s+(.*)$')
TRAIN_LINE = re.compile(r'(Epoch|Iter)\(train\)\s*(?:\[\s*(\d+)\])?\s*\[\s*(\d+)/(\d+)\]')


def to_number(text):
    try:
        return float(text)
    except ValueError:
        return text


def parse_teacher_metrics(lines):
    """{teacher: {metric: value}} from TeacherEvalHook's log lines (the last one of each teacher wins),
    else from the ``kdzoo summary:`` line."""
    found = {}
    for line in lines:
        match = TEACHER_LINE.search(line.rstrip())
        if match:
            items = (item.rsplit(': ', 1) for item in match.group(2).split(', ') if ': ' in item)
            found[match.group(1)] = {k: to_number(v) for k, v in items}
    if found:
        return found
    for line in lines:
        if 'kdzoo summary: ' in line:
            found = {}
            for part in line.split('kdzoo summary: ', 1)[1].rstrip().split('; '):
                match = SUMMARY_TEACHER.match(part)
                if match:
                    found.setdefault(match.group(1), {})[match.group(2)] = to_number(match.group(3))
    return found


def parse_val_line_metrics(lines, key):
    """The metrics of the last ``Epoch(val)`` / ``Iter(val)`` log line that reports ``key``, or {}."""
    for line in reversed(lines):
        match = VAL_LINE.search(line)
        if match:
            metrics = dict(re.findall(r'(\S+): (\S+)', match.group(1)))
            if key in metrics:
                return {k: to_number(v) for k, v in metrics.items()}
    return {}


def scalars_val_metrics(work_dir, key):
    """The last record holding ``key`` in the newest ``<work_dir>/<timestamp>/vis_data/scalars.json``
    that has one (a resumed run writes a new timestamp folder), or {}."""
    runs = sorted((d for d in os.listdir(work_dir) if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))),
                  reverse=True) if osp.isdir(work_dir) else []
    for run in runs:
        record = {}
        with open(osp.join(work_dir, run, 'vis_data', 'scalars.json')) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if key in row:
                    record = row
        if record:
            return record
    return {}


def collect_metrics(work_dir, keys, log_lines):
    """({key: value} for ``keys``, error or None). The error names the keys the run did report."""
    record = scalars_val_metrics(work_dir, keys[0]) or parse_val_line_metrics(log_lines, keys[0])
    reported = sorted(k for k in record if k not in ('step', 'epoch', 'iter', 'time', 'data_time', 'eta'))
    missing = [k for k in keys if k not in record]
    if missing:
        where = f"it reported: {', '.join(reported)}" if reported else 'it reported no validation results'
        return {}, (f"metric(s) {', '.join(missing)} not found in the run's validation results ({where}); "
                    f"fix 'metric'/'extra_metrics' in the spec")
    return {k: record[k] for k in keys}, None


# --------------------------------------------------------------------------------------- running cells

def read_log_lines(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().splitlines()
    except OSError:
        return []


def last_attempt(lines):
    """The lines the latest attempt appended to train.log (see :func:`run_logged`)."""
    starts = [i for i, line in enumerate(lines) if line.startswith('===== kdzoo benchmark, ')]
    return lines[starts[-1]:] if starts else lines


def cell_record(cell, spec, **fields):
    record = dict(cell=cell.id, pair=cell.pair, method=cell.method, seed=cell.seed, config=cell.config,
                  overrides=spec.cell_overrides(cell), work_dir=cell.work_dir)
    record.update(fields)
    return record


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
    returncode, tail = run_logged(cell_command(cell, spec, resume), log_path, child_env(threads), registry, on_line)
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
    """'tools/train.py exited with code 1: KeyError: ...' (the last exception line of the log, if any)."""
    message = f'tools/train.py exited with code {returncode}'
    exception = next((line for line in reversed(tail) if EXCEPTION_LINE.match(line)), None)
    return f'{message}: {exception[:300]}' if exception else message


def failed_teacher_record(cell, spec, job, tail):
    return cell_record(cell, spec, status='failed', returncode=None, duration_s=0.0, resumed=False,
                       finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'),
                       error=f"training its teacher(s) {', '.join(job.checkpoints)} failed, see {job.log_path}",
                       log_tail=tail)


# ----------------------------------------------------------------------------------------- progress

def format_duration(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def train_position(line):
    """'epoch 3 [10/16]' (or 'iter 100/1000') from an mmengine training log line, or None."""
    match = TRAIN_LINE.search(line)
    if not match:
        return None
    kind, epoch, it, total = match.groups()
    return f'iter {it}/{total}' if kind == 'Iter' else f'epoch {epoch} [{it}/{total}]'


class Progress:
    """Cells done / left, what each running cell is doing, and an ETA from the finished cells' durations."""

    def __init__(self, total, skipped, to_run, workers, max_epochs=None):
        self.lock = threading.Lock()
        self.total, self.skipped, self.to_run, self.workers = total, skipped, to_run, workers
        self.max_epochs = max_epochs or {}
        self.running = {}  # cell id -> (start time, position)
        self.durations, self.failed, self.untimed = [], 0, 0
        self.changed = True

    def start(self, cell):
        with self.lock:
            self.running[cell.id] = (time.time(), 'starting')
            self.changed = True

    def line(self, cell, text):
        position = train_position(text)
        if position is None:
            if 'on the validation set' in text:
                position = 'evaluating the teacher'
            elif '(val)' in text:
                position = 'validating'
            else:
                return
        max_epochs = self.max_epochs.get(cell.config)
        if max_epochs and position.startswith('epoch '):
            epoch, _, rest = position[6:].partition(' ')
            position = f'epoch {epoch}/{max_epochs} {rest}'.rstrip()
        with self.lock:
            if cell.id in self.running:
                self.running[cell.id] = (self.running[cell.id][0], position)
                self.changed = True

    def finish(self, cell, result, timed=True):
        """A cell is over; ``timed=False`` for one that never ran (it does not count towards the ETA)."""
        with self.lock:
            self.running.pop(cell.id, None)
            if timed:
                self.durations.append(result.get('duration_s') or 0.0)
            else:
                self.untimed += 1
            self.failed += result.get('status') == 'failed'
            self.changed = True

    def eta(self):
        if not self.durations:
            return 'after the first cell'
        mean = sum(self.durations) / len(self.durations)
        waiting = self.to_run - len(self.durations) - self.untimed - len(self.running)
        remaining = sum(max(mean - (time.time() - start), 0) for start, _ in self.running.values())
        return format_duration((remaining + waiting * mean) / max(1, min(self.workers, self.to_run)))

    def render(self):
        with self.lock:
            self.changed = False
            done = self.skipped + len(self.durations) + self.untimed
            failed = f' ({self.failed} failed)' if self.failed else ''
            running = ', '.join(f'{cid} {pos}' for cid, (_, pos) in self.running.items()) or 'none running'
            return (f'[benchmark] {done}/{self.total} cells done{failed}, {self.total - done} left | '
                    f'{running} | ETA {self.eta()}')


# ------------------------------------------------------------------------------------- aggregation

def all_records(spec, cells):
    """One record per cell of the matrix: its result.json, or status 'missing' when it has none."""
    records = []
    for cell in cells:
        result = read_result(cell)
        records.append(result if result else cell_record(cell, spec, status='missing'))
    return records


@dataclasses.dataclass
class Stat:
    """Mean and sample standard deviation (ddof 1; nan for one value) over seeds."""
    values: List[float]
    failed: int = 0
    missing: int = 0

    @property
    def n(self):
        return len(self.values)

    @property
    def mean(self):
        return sum(self.values) / self.n if self.values else math.nan

    @property
    def std(self):
        if self.n < 2:
            return math.nan
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (self.n - 1))


def finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def method_stat(records, metric):
    ok = [r for r in records if r.get('status') == 'ok' and finite_number((r.get('metrics') or {}).get(metric))]
    return Stat([float(r['metrics'][metric]) for r in ok],
                failed=sum(r.get('status') == 'failed' for r in records),
                missing=sum(r.get('status') == 'missing' for r in records))


def teacher_stats(records, metric):
    """{teacher name: Stat over seeds}: per seed, the mean of the value logged by that seed's cells
    (the teacher is fixed, so every cell logs the same number)."""
    per_teacher = {}
    for record in records:
        if record.get('status') != 'ok':
            continue
        for name, metrics in (record.get('teacher_metrics') or {}).items():
            if finite_number(metrics.get(metric)):
                per_teacher.setdefault(name, {}).setdefault(record['seed'], []).append(float(metrics[metric]))
    return {name: Stat([sum(v) / len(v) for _, v in sorted(seeds.items())])
            for name, seeds in sorted(per_teacher.items())}


def summarize(spec, records):
    """{metric: {pair: {'teacher': {name: Stat}, method: Stat or None (n/a)}}}."""
    table = {}
    for metric in spec.metrics:
        rows = {}
        for pair in spec.pairs.values():
            mine = [r for r in records if r.get('pair') == pair.name]
            row = {'teacher': teacher_stats(mine, metric)}
            for method in spec.columns():
                row[method] = (method_stat([r for r in mine if r.get('method') == method], metric)
                               if method in pair.methods else None)
            rows[pair.name] = row
        table[metric] = rows
    return table


def decimals_for(table_rows):
    values = [abs(v) for row in table_rows.values() for key, stat in row.items() if key != 'teacher' and stat
              for v in stat.values]
    values += [abs(v) for row in table_rows.values() for stat in row['teacher'].values() for v in stat.values]
    return 4 if values and max(values) <= 1 else 2


def format_stat(stat, decimals, num_seeds):
    if stat is None:
        return 'n/a'
    if not stat.n:
        return 'failed' if stat.failed else 'missing'
    text = f'{stat.mean:.{decimals}f}' + (f' ± {stat.std:.{decimals}f}' if stat.n > 1 else '')
    notes = [f'n={stat.n}'] if stat.n < num_seeds else []
    notes += [f'{stat.failed} failed'] if stat.failed else []
    notes += [f'{stat.missing} missing'] if stat.missing else []
    return text + (f" ({', '.join(notes)})" if notes else '')


def best_methods(row, methods, lower_is_better):
    """The distillation method(s) with the best mean in a row (ties all win)."""
    means = {m: row[m].mean for m in methods if row.get(m) is not None and row[m].n}
    if not means:
        return set()
    best = (min if lower_is_better else max)(means.values())
    return {m for m, v in means.items() if v == best}


def teacher_cell(stats, decimals, num_seeds):
    if not stats:
        return '—'
    if len(stats) == 1:
        return format_stat(next(iter(stats.values())), decimals, num_seeds)
    return '; '.join(f'{name}: {format_stat(stat, decimals, num_seeds)}' for name, stat in stats.items())


def render_markdown(spec, records):
    """One table per metric: rows are pairs; columns the teacher, the reference, then the methods."""
    summary = summarize(spec, records)
    columns = spec.columns()
    distillers = [c for c in columns if c != spec.reference]
    num_seeds = len(spec.seeds)
    counts = {s: sum(r.get('status') == s for r in records) for s in ('ok', 'failed', 'missing')}
    lines = [f'# Benchmark {spec.name}', '',
             f"{len(records)} cells: {counts['ok']} ok, {counts['failed']} failed, {counts['missing']} not run. "
             f"Seeds {', '.join(map(str, spec.seeds))}; mean ± sample standard deviation over seeds, (n=k) when "
             f'fewer seeds finished. Bold: the best distillation method of the pair. n/a: the pair does not run '
             f'the method; failed / missing: no finished run.', '']
    for metric, rows in summary.items():
        decimals = decimals_for(rows)
        lower = metric in spec.lower_is_better
        lines += [f"## {metric} ({'lower' if lower else 'higher'} is better)", '',
                  '| pair | teacher | ' + ' | '.join(columns) + ' |',
                  '|---' * (len(columns) + 2) + '|']
        for pair, row in rows.items():
            best = best_methods(row, distillers, lower)
            cells = [teacher_cell(row['teacher'], decimals, num_seeds)]
            for method in columns:
                text = format_stat(row[method], decimals, num_seeds)
                cells.append(f'**{text}**' if method in best else text)
            lines.append(f'| {pair} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    failed = [r for r in records if r.get('status') == 'failed']
    if failed:
        lines += ['## Failed cells', '']
        lines += [f"- {r['cell']}: {r.get('error', 'failed')} (log: {osp.join(r['work_dir'], 'train.log')})"
                  for r in failed]
        lines.append('')
    return '\n'.join(lines)


def csv_text(spec, records):
    teacher_keys = sorted({f'teacher/{name}/{k}' for r in records
                           for name, metrics in (r.get('teacher_metrics') or {}).items()
                           for k in metrics if k in spec.metrics})
    header = ['cell', 'pair', 'method', 'seed', 'status', *spec.metrics, *teacher_keys, 'duration_s',
              'returncode', 'resumed', 'work_dir', 'error']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(header)
    for r in records:
        metrics = r.get('metrics') or {}
        teachers = {f'teacher/{n}/{k}': v for n, m in (r.get('teacher_metrics') or {}).items() for k, v in m.items()}
        writer.writerow([r.get('cell'), r.get('pair'), r.get('method'), r.get('seed'), r.get('status'),
                         *(metrics.get(k, '') for k in spec.metrics), *(teachers.get(k, '') for k in teacher_keys),
                         r.get('duration_s', ''), r.get('returncode', ''), r.get('resumed', ''), r.get('work_dir'),
                         r.get('error', '')])
    return buffer.getvalue()


def results_document(spec, records):
    return dict(name=spec.name, metric=spec.metric, extra_metrics=spec.extra_metrics, seeds=spec.seeds,
                reference=spec.reference, overrides=spec.overrides,
                pairs={p.name: dict(dir=p.dir, methods=p.methods) for p in spec.pairs.values()},
                generated_at=time.strftime('%Y-%m-%dT%H:%M:%S'), cells=records)


def write_png(path, spec, records):
    """Grouped bar chart, one panel per metric: bars = teacher, reference, methods; error bars = std."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    summary = summarize(spec, records)
    columns = ['teacher'] + spec.columns()
    pairs = list(spec.pairs)
    fig, axes = plt.subplots(len(summary), 1, figsize=(max(6, 1.2 * len(pairs) * len(columns) / 2 + 2),
                                                       3.6 * len(summary)), squeeze=False)
    width = 0.8 / len(columns)
    colours = plt.get_cmap('tab10' if len(columns) <= 10 else 'tab20').colors
    for ax, (metric, rows) in zip(axes[:, 0], summary.items()):
        lows, highs = [], []
        for i, column in enumerate(columns):
            xs, means, stds = [], [], []
            for x, pair in enumerate(pairs):
                stat = rows[pair][column]
                if column == 'teacher':
                    stat = Stat([v for s in stat.values() for v in s.values]) if stat else None
                if stat is not None and stat.n:
                    xs.append(x - 0.4 + width * (i + 0.5))
                    means.append(stat.mean)
                    stds.append(0.0 if math.isnan(stat.std) else stat.std)
            if xs:  # one colour per column in every panel, whether or not earlier columns had bars
                ax.bar(xs, means, width, yerr=stds, capsize=2, label=column, color=colours[i % len(colours)])
                lows += [m - s for m, s in zip(means, stds)]
                highs += [m + s for m, s in zip(means, stds)]
        if lows and min(lows) > 0:  # zoom in on the differences (the axis no longer starts at 0)
            span = (max(highs) - min(lows)) or 0.1 * max(highs)
            ax.set_ylim(max(0.0, min(lows) - span), max(highs) + 0.25 * span)
        ax.set_xticks(range(len(pairs)))
        ax.set_xticklabels(pairs)
        ax.set_ylabel(metric)
        ax.set_title(f'{spec.name}: {metric} (mean ± std over seeds)')
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize='small', loc='upper left', bbox_to_anchor=(1.0, 1.0))  # outside: never over bars
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=100), binary=True)
    finally:
        plt.close(fig)


def write_reports(out_dir, spec, records):
    """results.json, .csv, .md and .png in ``out_dir``, each written whole then renamed into place."""
    paths = dict(json=osp.join(out_dir, 'results.json'), csv=osp.join(out_dir, 'results.csv'),
                 md=osp.join(out_dir, 'results.md'), png=osp.join(out_dir, 'results.png'))
    write_json(paths['json'], results_document(spec, records))
    atomic_write(paths['csv'], lambda f: f.write(csv_text(spec, records)))
    atomic_write(paths['md'], lambda f: f.write(render_markdown(spec, records)))
    write_png(paths['png'], spec, records)
    return paths


# --------------------------------------------------------------------------------------- the whole run

def print_flush(*args):
    print(*args, flush=True)


def describe_cells(cells, todo):
    waiting = {c.id for c in todo}
    for cell in cells:
        state = ('resume' if has_checkpoint(cell.work_dir) else 'run') if cell.id in waiting else 'done'
        print_flush(f'  {cell.id:<40} {state:<7} {cell.config}')


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
        returncode, tail = run_logged(teacher_command(job, spec.overrides), job.log_path,
                                      child_env(threads_per_worker(1)), registry)
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


def max_epochs_of(configs):
    return {config: cfg.get('train_cfg', {}).get('max_epochs') for config, cfg in configs.items() if cfg}


def record_blocked(cells, blocked, spec, progress):
    """Write the failed results of the cells whose teacher could not be trained."""
    for cell in cells:
        if cell.id in blocked:
            result = failed_teacher_record(cell, spec, *blocked[cell.id])
            write_json(cell.result_path, result)
            progress.finish(cell, result, timed=False)
            print_flush(f"[benchmark] {cell.id}: FAILED ({result['error']})")


def run_cell_safely(cell, spec, threads, registry, progress, force):
    """:func:`run_cell` in a worker thread; an error of the benchmark itself (e.g. a full disk) fails the
    cell instead of the whole benchmark."""
    progress.start(cell)
    try:
        return run_cell(cell, spec, threads, registry, lambda line: progress.line(cell, line), force)
    except Exception as error:  # noqa: BLE001
        result = cell_record(cell, spec, status='failed', returncode=None, duration_s=0.0, resumed=False,
                             error=f'benchmark error while running the cell: {error!r}', log_tail=[])
        try:
            write_json(cell.result_path, result)
        except OSError:
            pass
        return result


def run_cells(cells, spec, out_dir, all_cells, workers, registry, progress, force, progress_interval):
    """Run ``cells`` ``workers`` at a time; print progress; rewrite the reports after each finished cell."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    threads = threads_per_worker(workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(run_cell_safely, cell, spec, threads, registry, progress, force): cell
                   for cell in cells}
        last_print = 0.0
        try:
            while pending:
                finished, _ = wait(pending, timeout=progress_interval, return_when=FIRST_COMPLETED)
                for future in finished:
                    report_cell(pending.pop(future), future.result(), progress)
                if finished:
                    write_reports(out_dir, spec, all_records(spec, all_cells))
                if progress.changed or time.time() - last_print > 6 * progress_interval:
                    print_flush(progress.render())
                    last_print = time.time()
        except BaseException:
            registry.terminate_all()
            for future in pending:
                future.cancel()
            raise


def run_benchmark(spec, out_dir, workers=1, force=False, patterns=None, progress_interval=10.0):
    """Run the selected cells not done yet (all of them with ``force``), write the reports; returns the
    selected cells' records.

    Teachers are trained first, once each and serially; the cells then run ``workers`` at a time, each
    with cpu_count // workers threads. A failed cell is recorded and the others go on."""
    all_cells = plan_cells(spec, out_dir)
    cells = select_cells(all_cells, patterns)
    todo, done = cells_to_run(cells, spec, force)
    print_flush(f'[benchmark] {spec.name}: {len(cells)} cells, {len(done)} already done, {len(todo)} to run, '
                f'{workers} worker(s); results in {out_dir}')
    registry = ProcessRegistry()
    try:
        configs = load_configs(todo, spec.overrides)
        failed_teachers = train_teachers(plan_teacher_jobs(todo, configs, out_dir), spec, registry)
        blocked = blocked_cells(todo, configs, failed_teachers)
        progress = Progress(len(cells), len(done), len(todo), workers, max_epochs_of(configs))
        record_blocked(todo, blocked, spec, progress)
        run_cells([c for c in todo if c.id not in blocked], spec, out_dir, all_cells, max(1, workers), registry,
                  progress, force, progress_interval)
    except KeyboardInterrupt:
        registry.terminate_all()
        print_flush('[benchmark] interrupted: unfinished cells have no result and resume on the next run')
        raise
    records = all_records(spec, all_cells)
    paths = write_reports(out_dir, spec, records)
    print_flush(f"[benchmark] results: {', '.join(paths.values())}")
    selected = {c.id for c in cells}
    return [r for r in records if r['cell'] in selected]


def format_value(value):
    if not finite_number(value):
        return str(value)
    return f'{value:.4f}' if abs(value) <= 1 else f'{value:.2f}'


def report_cell(cell, result, progress):
    if result is None:  # interrupted
        return
    progress.finish(cell, result)
    if result['status'] == 'ok':
        shown = ', '.join(f'{k}: {format_value(v)}' for k, v in result['metrics'].items())
        print_flush(f"[benchmark] {cell.id}: ok in {format_duration(result['duration_s'])} ({shown})")
    else:
        print_flush(f"[benchmark] {cell.id}: FAILED ({result.get('error')}); log: "
                    f"{osp.join(cell.work_dir, 'train.log')}")


def main(argv=None):
    """``python -m kdzoo.benchmark train-teachers CONFIG OVERRIDES_JSON`` (used by run_benchmark)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] != 'train-teachers':
        sys.exit('usage: python -m kdzoo.benchmark train-teachers CONFIG OVERRIDES_JSON '
                 '(the command line is tools/benchmark.py)')
    train_teachers_child(argv[1], argv[2])


if __name__ == '__main__':
    main()
