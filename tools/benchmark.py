"""Run a benchmark matrix (teacher-student pair x method x seed) from a YAML spec; resumable.

    python tools/benchmark.py SPEC [--out-dir DIR] [--workers N] [--cells PATTERN ...] [--force]
                                   [--dry-run | --report-only] [--progress-interval SEC]

Each cell is an ordinary ``python -m kdzoo.cli.train CONFIG --work-dir <out>/<pair>/<method>/seed<S> --cfg-options
randomness.seed=S <overrides>`` run in its own process, its full log in ``train.log`` there. Missing
teachers are trained first, once each, one after another. A finished cell writes ``result.json``; a rerun
skips it (``--force`` reruns), retries failed cells, and resumes a killed cell from its checkpoint.
``--workers N`` runs N cells at a time with cpu_count // N threads each. The out folder (default
``work_dirs/benchmarks/<name>``) gets results.json, .csv, .md (mean ± std tables) and .png after every cell.
The exit code is 1 when a cell failed, 2 when the spec is invalid.

The spec format is described in :mod:`kdzoo.bench` and docs/benchmarks.md, e.g.::

    name: mnist_hetero
    metric: accuracy/top1
    seeds: [0, 1, 2]
    overrides: {train_dataloader.dataset.num_items: 1000}
    methods: [student, kd, dkd, fitnet]
    pairs: {vit-resnet: configs/benchmarks/mnist/vit-resnet}
"""
import argparse
import os.path as osp
import signal
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from kdzoo import bench  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run a resumable distillation benchmark matrix from a YAML spec.')
    parser.add_argument('spec', help='the benchmark spec (YAML), see docs/benchmarks.md')
    parser.add_argument('--out-dir', help='where cells and results go (default: work_dirs/benchmarks/<name>)')
    parser.add_argument('--workers', type=int, default=1,
                        help='cells run at the same time, each with cpu_count // N threads (default 1)')
    parser.add_argument('--cells', nargs='+', metavar='PATTERN',
                        help="only the cells whose id pair/method/seedS matches, e.g. 'vit-resnet/kd/*'")
    parser.add_argument('--force', action='store_true', help='rerun the selected cells from scratch, even if done')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--dry-run', action='store_true', help='print the cells and the teachers to train, run nothing')
    mode.add_argument('--report-only', action='store_true',
                      help="rewrite results.{json,csv,md,png} from the cells' result.json files, run nothing")
    parser.add_argument('--progress-interval', type=float, default=10.0,
                        help='seconds between progress lines while cells run (default 10)')
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error('--workers must be at least 1')
    return args


def dry_run(spec, out_dir, patterns, force):
    cells = bench.select_cells(bench.plan_cells(spec, out_dir), patterns)
    todo, done = bench.cells_to_run(cells, spec, force)
    print(f'{spec.name}: {len(cells)} cells ({len(done)} done, {len(todo)} to run); results in {out_dir}')
    bench.describe_cells(cells, todo)
    for job in bench.plan_teacher_jobs(todo, bench.load_configs(todo, spec.overrides), out_dir):
        for name, checkpoint in job.checkpoints.items():
            print(f'teacher {name}: {checkpoint} missing, would be trained first with {job.teacher_configs[name]}')
    return 0


def report_only(spec, out_dir, patterns):
    cells = bench.plan_cells(spec, out_dir)
    records = bench.all_records(spec, cells)
    paths = bench.write_reports(out_dir, spec, records)
    selected = {c.id for c in bench.select_cells(cells, patterns)}
    counts = {s: sum(r['status'] == s for r in records if r['cell'] in selected) for s in ('ok', 'failed', 'missing')}
    print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['missing']} not run; "
          f"wrote {', '.join(paths.values())}")
    return 0


def stop_on_sigterm():
    """SIGTERM (a scheduler's kill) ends the cells' processes like Ctrl-C does, so they resume next time."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def main(argv=None):
    args = parse_args(argv)
    try:
        spec = bench.load_spec(args.spec)
        out_dir = args.out_dir or bench.default_out_dir(spec)
        if args.dry_run:
            return dry_run(spec, out_dir, args.cells, args.force)
        if args.report_only:
            return report_only(spec, out_dir, args.cells)
        if not bench.select_cells(bench.plan_cells(spec, out_dir), args.cells):
            raise bench.SpecError([f'--cells {args.cells} matches no cell; cell ids look like pair/method/seedS'])
        records = bench.run_benchmark(spec, out_dir, workers=args.workers, force=args.force, patterns=args.cells,
                                      progress_interval=args.progress_interval)
    except bench.SpecError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    failed = [r['cell'] for r in records if r['status'] == 'failed']
    if failed:
        print(f"[benchmark] {len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    stop_on_sigterm()
    sys.exit(main())
