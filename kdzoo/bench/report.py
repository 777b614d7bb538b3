"""The aggregate of a benchmark: results.json, .csv, .md (mean ± std tables) and .png (bar chart).

Each file is written whole, then renamed into place, after every finished cell.
"""
import csv
import io
import math
import os.path as osp
import time

from .results import Stat, atomic_write, summarize, write_json

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
