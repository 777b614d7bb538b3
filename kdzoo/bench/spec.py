"""Benchmark specs: reading a YAML spec and checking everything that can be checked before a run.

The format is described in :mod:`kdzoo.bench` and docs/benchmarks.md. :class:`SpecError` lists every
problem at once, each with its fix.
"""
import dataclasses
import difflib
import math
import os
import os.path as osp
import re
from typing import Dict, List

SPEC_KEYS = ('name', 'metric', 'extra_metrics', 'lower_is_better', 'seeds', 'overrides', 'reference',
             'methods', 'pairs', 'teacher_cache')
CACHE_SPEC_KEYS = ('methods', 'views', 'dtype', 'topk', 'seed')
REQUIRED_KEYS = ('name', 'metric', 'seeds', 'pairs')
PAIR_KEYS = ('dir', 'methods')
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]*$')


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
    """The overrides, once each is known to reach the training command unchanged through ``--cfg-options``."""
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
    """How ``value`` is written after ``key=`` on the training command's ``--cfg-options``."""
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
