"""Benchmark matrices: (teacher-student pair x method x seed), each cell an ordinary training run
(``python -m kdzoo.cli.train``) in its own process.

``tools/benchmark.py SPEC`` is the command line; this package holds what it is built of, one concern a
module:

    spec.py       reading and validating a spec (:class:`Spec`, :class:`SpecError`)
    cells.py      planning the cells, which still run, running one cell
    teachers.py   the missing teachers, trained once each before the cells
    processes.py  the child processes: environment, logged output, ending exactly them
    results.py    a run's results read back (result.json, scalars.json, log lines); statistics over seeds
    report.py     results.json, .csv, .md (mean ± std tables) and .png
    progress.py   progress lines and the ETA
    run.py        a whole benchmark (:func:`run_benchmark`)

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

How results are read from a run's files: :mod:`kdzoo.bench.results`.
"""
from .spec import Pair, Spec, SpecError, format_cfg_value, load_spec, parse_spec, round_trips
from .cells import (Cell, cell_command, cells_to_run, default_out_dir, exit_error, has_checkpoint, plan_cells,
                    run_cell, select_cells)
from .teachers import TeacherJob, load_configs, missing_teachers, plan_teacher_jobs, teacher_command, train_teachers
from .processes import ProcessRegistry, ROOT, child_env, run_logged, threads_per_worker
from .results import (Stat, all_records, atomic_write, cell_record, collect_metrics, parse_teacher_metrics,
                      parse_val_line_metrics, read_result, summarize, write_json)
from .report import csv_text, render_markdown, results_document, write_png, write_reports
from .progress import Progress, format_duration, train_position
from .run import describe_cells, run_benchmark

__all__ = [
    'Pair', 'Spec', 'SpecError', 'format_cfg_value', 'load_spec', 'parse_spec', 'round_trips', 'Cell', 'cell_command',
    'cells_to_run', 'default_out_dir', 'exit_error', 'has_checkpoint', 'plan_cells', 'run_cell', 'select_cells',
    'TeacherJob', 'load_configs', 'missing_teachers', 'plan_teacher_jobs', 'teacher_command', 'train_teachers',
    'ProcessRegistry', 'ROOT', 'child_env', 'run_logged', 'threads_per_worker', 'Stat', 'all_records', 'atomic_write',
    'cell_record', 'collect_metrics', 'parse_teacher_metrics', 'parse_val_line_metrics', 'read_result', 'summarize',
    'write_json', 'csv_text', 'render_markdown', 'results_document', 'write_png', 'write_reports', 'Progress',
    'format_duration', 'train_position', 'describe_cells', 'run_benchmark',
]
