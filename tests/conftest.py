import os
import sys

import pytest
import torch

import kdzoo  # noqa: F401  (registries and mmengine fixes, e.g. 'kdzoo::' config bases, for any single test file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests that start processes (``dist``) belong to the slow tier: ``pytest`` skips them, ``pytest -m slow``
    runs them. Runs before pytest's own ``-m`` selection."""
    for item in items:
        if item.get_closest_marker('dist') and not item.get_closest_marker('slow'):
            item.add_marker(pytest.mark.slow)
