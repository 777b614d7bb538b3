"""Old import paths of modules that moved, kept working for one release (CHANGELOG.md, "Moved").

``import kdzoo.distillers.fofa`` (an old path) imports the module at its new path and binds the same module
object under the old name, with a ``DeprecationWarning``: the classes are the same objects, so ``isinstance``
checks, registry look-ups and monkeypatching through either name agree. An old package path also maps its
sub-modules (``kdzoo.models.face.heads`` -> ``kdzoo.face.models.heads``).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module path -> new module path; a package maps every module below it the same way.
MOVED_MODULES = {
    **{f'kdzoo.distillers.{method}': f'kdzoo.methods.{method}.distiller'
       for method in ('kd', 'dkd', 'dist', 'rkd', 'fitnet', 'ofa', 'cakd', 'fofa', 'civt')},
    'kdzoo.distillers.urfm': 'kdzoo.face.methods.urfm.distiller',
    'kdzoo.distillers.face_kd': 'kdzoo.face.methods.face_kd.distiller',
    'kdzoo.adapters.afp': 'kdzoo.methods.fofa.adapter',
    'kdzoo.adapters.civt_tokens': 'kdzoo.methods.civt.adapter',
    'kdzoo.adapters.apt': 'kdzoo.face.methods.urfm.adapter',
    'kdzoo.models.face': 'kdzoo.face.models',
    'kdzoo.datasets.face': 'kdzoo.face.datasets',
    'kdzoo.evaluation': 'kdzoo.face.evaluation',
    'kdzoo.evaluation.face_verification': 'kdzoo.face.evaluation.verification',
}


def new_path(old_name):
    """The new path of ``old_name`` (or of the moved package above it, the closest one), or None."""
    for old in sorted(MOVED_MODULES, key=len, reverse=True):
        if old_name == old or old_name.startswith(old + '.'):
            return MOVED_MODULES[old] + old_name[len(old):]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new_name):
        self.new_name = new_name

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new_name}; the old path goes in the next release "
                      "(CHANGELOG.md)", DeprecationWarning, stacklevel=3)
        module = importlib.import_module(self.new_name)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        """The module at the new path is already executed; only its ``__spec__``, which the import system
        overwrote with the old path's, is put back."""
        module.__spec__ = self.own_spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds old paths of moved modules before the file system does (it sits first on ``sys.meta_path``)."""

    def find_spec(self, fullname, path=None, target=None):
        new_name = new_path(fullname)
        if new_name is None:
            return None
        is_package = importlib.util.find_spec(new_name).submodule_search_locations is not None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new_name), is_package=is_package)


def install():
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


def moved_attribute(package, name, moved):
    """A package's ``__getattr__`` for names that moved elsewhere: ``moved`` maps a name to its new module."""
    if name not in moved:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    warnings.warn(f"{package}.{name} moved to {moved[name]}.{name}; the old path goes in the next release "
                  "(CHANGELOG.md)", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(moved[name]), name)
