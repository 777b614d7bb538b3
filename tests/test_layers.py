"""The layers of kdzoo: the core never imports the face-recognition vertical.

kdzoo/face registers itself (models, data, metrics, methods, its task, its config resolver) in the core's
registries; the core reaches it only through them. ``import kdzoo`` (kdzoo/__init__.py) imports it to register
it, and kdzoo/utils/moved.py aliases its old module paths (those are strings, not imports).
"""
import ast
import os
import os.path as osp

import pytest

from run_helpers import ROOT

PACKAGE = osp.join(ROOT, 'kdzoo')
ALLOWED_TO_IMPORT_FACE = {'kdzoo/__init__.py', 'kdzoo/utils/moved.py'}


def module_name(path):
    relative = osp.relpath(path, ROOT)[:-len('.py')].replace(os.sep, '.')
    return relative[:-len('.__init__')] if relative.endswith('.__init__') else relative


def imported_modules(path):
    """Absolute names of every module ``path`` imports (top level or inside functions, relative ones resolved)."""
    tree = ast.parse(open(path).read(), filename=path)
    package = module_name(path) if path.endswith('__init__.py') else module_name(path).rpartition('.')[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parent + ([node.module] if node.module else []))
            names += [base] + [f'{base}.{alias.name}' for alias in node.names]
    return names


def kdzoo_modules():
    """Source files of the package (configs are mmengine config files, not modules)."""
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d not in ('configs', '__pycache__'))
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(folder, name)


def imports_face(path):
    return sorted({name for name in imported_modules(path) if name == 'kdzoo.face' or name.startswith('kdzoo.face.')})


def relative(path):
    return osp.relpath(path, ROOT).replace(os.sep, '/')


def test_relative_imports_resolve():
    face_task = osp.join(PACKAGE, 'face', 'task.py')
    assert 'kdzoo.face.models.heads' in imported_modules(face_task)
    assert imports_face(face_task)          # the check below would notice a face import


def test_the_core_does_not_import_the_face_vertical():
    offenders = {relative(path): imports_face(path) for path in kdzoo_modules()
                 if not relative(path).startswith('kdzoo/face/') and relative(path) not in ALLOWED_TO_IMPORT_FACE}
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, (f"core modules import kdzoo.face: {offenders}; reach it through a registry "
                           "(kdzoo/registry.py: TASKS, CONFIG_RESOLVERS, ...) instead")


@pytest.mark.parametrize('path', ['kdzoo/methods', 'kdzoo/models', 'kdzoo/tasks', 'kdzoo/engine', 'kdzoo/taps',
                                  'kdzoo/distillers', 'kdzoo/adapters', 'kdzoo/tools_support.py'])
def test_each_core_part_is_checked(path):
    checked = {relative(p) for p in kdzoo_modules()}
    assert any(p == path or p.startswith(path + '/') for p in checked)
