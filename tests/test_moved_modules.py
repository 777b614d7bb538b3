"""Old import paths of moved modules keep working for one release, as the same module objects."""
import importlib
import sys

import pytest

from kdzoo.utils import moved


@pytest.fixture
def moved_package(monkeypatch):
    """A package moved for the test: kdzoo.old_utils -> kdzoo.utils (a package, so its modules map too)."""
    monkeypatch.setitem(moved.MOVED_MODULES, 'kdzoo.old_utils', 'kdzoo.utils')
    yield
    for name in [n for n in sys.modules if n.startswith('kdzoo.old_utils')]:
        del sys.modules[name]
    monkeypatch.delattr(sys.modules['kdzoo'], 'old_utils', raising=False)


def test_an_old_path_is_the_new_module_and_warns(moved_package):
    with pytest.warns(DeprecationWarning, match='kdzoo.old_utils.checks moved to kdzoo.utils.checks'):
        old = importlib.import_module('kdzoo.old_utils.checks')
    new = importlib.import_module('kdzoo.utils.checks')
    assert old is new
    assert new.__spec__.name == 'kdzoo.utils.checks'   # the new module keeps its own spec
    from kdzoo.old_utils.checks import positive
    assert positive is new.positive


def test_a_path_that_did_not_move_is_left_to_the_file_system():
    assert moved.new_path('kdzoo.registry') is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module('kdzoo.never_existed')


@pytest.mark.parametrize('old', sorted(moved.MOVED_MODULES))
def test_every_moved_module_imports_under_its_old_path(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)   # an earlier import would not warn again
    with pytest.warns(DeprecationWarning, match=f'{old} moved to'):
        module = importlib.import_module(old)
    assert module is importlib.import_module(moved.MOVED_MODULES[old])
