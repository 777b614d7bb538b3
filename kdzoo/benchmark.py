"""Moved to the package :mod:`kdzoo.bench` (spec, cells, teachers, processes, results, report, progress, run).

This module re-exports kdzoo.bench's public names for one release (see CHANGELOG.md). A test that patches a
name here no longer reaches the code that calls it: patch it in its module, e.g.
``kdzoo.bench.processes.run_logged``.
"""
import warnings

from .bench import *  # noqa: F401,F403
from .bench import __all__  # noqa: F401

warnings.warn('kdzoo.benchmark moved to kdzoo.bench (see CHANGELOG.md); this alias is removed in the next release',
              DeprecationWarning, stacklevel=2)
