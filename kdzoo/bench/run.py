"""A whole benchmark run: teachers first, then the cells ``workers`` at a time, the reports after each."""
import os.path as osp
import time

from .cells import cells_to_run, has_checkpoint, plan_cells, run_cell, select_cells
from .processes import ProcessRegistry, threads_per_worker
from .progress import Progress, format_duration, print_flush
from .report import write_reports
from .results import all_records, cell_record, finite_number, write_json
from .teachers import blocked_cells, failed_teacher_record, load_configs, plan_teacher_jobs, train_teachers

def describe_cells(cells, todo):
    waiting = {c.id for c in todo}
    for cell in cells:
        state = ('resume' if has_checkpoint(cell.work_dir) else 'run') if cell.id in waiting else 'done'
        print_flush(f'  {cell.id:<40} {state:<7} {cell.config}')


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
