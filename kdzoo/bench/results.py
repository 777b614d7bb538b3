"""What a finished run leaves behind, read back: a cell's result.json, its metrics from the run's files,
and the statistics over seeds that the reports tabulate.

Results are read from what a run really writes: the student's metrics from the last validation record in
``<work dir>/<timestamp>/vis_data/scalars.json`` (the newest run that has one; the ``Epoch(val)`` log
line is the fallback), the teachers' from ``TeacherEvalHook``'s line ``teacher 'NAME' on the validation
set: KEY: VALUE, ...`` (4 decimals; the ``kdzoo summary:`` line is the fallback).
"""
import dataclasses
import json
import math
import os
import os.path as osp
import re
import threading
from typing import Callable, List

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


def read_result(cell):
    """The cell's result.json, or None when the cell has not finished (or the file is unreadable)."""
    try:
        with open(cell.result_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cell_record(cell, spec, **fields):
    record = dict(cell=cell.id, pair=cell.pair, method=cell.method, seed=cell.seed, config=cell.config,
                  overrides=spec.cell_overrides(cell), work_dir=cell.work_dir)
    record.update(fields)
    return record


def all_records(spec, cells):
    """One record per cell of the matrix: its result.json, or status 'missing' when it has none."""
    records = []
    for cell in cells:
        result = read_result(cell)
        records.append(result if result else cell_record(cell, spec, status='missing'))
    return records


TEACHER_LINE = re.compile(r"teacher '([^']+)' on the validation set: (.*)$")
SUMMARY_TEACHER = re.compile(r'teacher (\S+) (\S+): (\S+)$')
VAL_LINE = re.compile(r'(?:Epoch|Iter)\(val\)\s*(?:\[\s*\d+\])?\[\s*\d+/\d+\]\s+(.*)$')


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


def read_log_lines(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().splitlines()
    except OSError:
        return []


def last_attempt(lines):
    """The lines the latest attempt appended to train.log (see :func:`kdzoo.bench.processes.run_logged`)."""
    starts = [i for i, line in enumerate(lines) if line.startswith('===== kdzoo benchmark, ')]
    return lines[starts[-1]:] if starts else lines


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
