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


# The layers of docs/architecture.md, top to bottom: a module imports its own layer or lower ones.
LAYERS = [
    ('kdzoo', 'kdzoo.benchmark', 'kdzoo.bench', 'kdzoo.cli', 'kdzoo.tools_support'),   # commands
    ('kdzoo.face',),                                        # the face-recognition vertical
    ('kdzoo.methods',),                                     # one unit per method
    ('kdzoo.engine',),                                      # mmengine glue
    ('kdzoo.models', 'kdzoo.models.distill_model'),         # DistillModel (and the package that exports it)
    ('kdzoo.tasks', 'kdzoo.distillers', 'kdzoo.adapters'),  # the interfaces
    ('kdzoo.models.*', 'kdzoo.datasets'),                   # builders, weights, involution; datasets
    ('kdzoo.taps',),
    ('kdzoo.registry',),
    ('kdzoo.utils',),
]
# The arrows that point up, each named in docs/architecture.md: (importing module, imported module).
UPWARD_IMPORTS = {
    ('kdzoo.distillers.base', 'kdzoo.engine.schedules'),           # every distiller's weight schedule
    ('kdzoo.models.distill_model', 'kdzoo.engine.teacher_cache'),  # opened only when configured
    ('kdzoo.utils.compat', 'kdzoo.models.weights'),                 # mmengine's loader patched to kdzoo's safe one
}


def layer_of(module):
    """Index in LAYERS of the most specific entry that ``module`` falls under."""
    best, best_length = None, -1
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            prefix = entry[:-2] if entry.endswith('.*') else entry
            matches = module.startswith(prefix + '.') if entry.endswith('.*') else \
                module == prefix or (module.startswith(prefix + '.') and prefix != 'kdzoo')
            if matches and len(entry) > best_length:
                best, best_length = index, len(entry)
    return best


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in kdzoo_modules() if layer_of(module_name(p)) is None]
    assert not unplaced, f"modules outside every layer of docs/architecture.md: {unplaced}"


def test_no_import_points_up_a_layer():
    upward = []
    for path in kdzoo_modules():
        source = module_name(path)
        for target in imported_modules(path):
            if not target.startswith('kdzoo.') or layer_of(target) is None:
                continue
            if layer_of(target) < layer_of(source) and (source, target) not in UPWARD_IMPORTS \
                    and not any(target.startswith(t + '.') and source == s for s, t in UPWARD_IMPORTS):
                upward.append(f"{source} -> {target}")
    assert not upward, ("imports that point up a layer (docs/architecture.md, Layers): " + ', '.join(sorted(set(upward)))
                        + "; move the shared code down, or reach the upper layer through a registry")


def test_layers_order_the_parts_as_the_architecture_page_draws_them():
    assert layer_of('kdzoo.taps.recorder') > layer_of('kdzoo.methods.kd.distiller')   # taps -> methods is up
    assert layer_of('kdzoo.models.distill_model') < layer_of('kdzoo.models.builders')
    assert layer_of('kdzoo.models') == layer_of('kdzoo.models.distill_model')
    assert layer_of('kdzoo.face.task') < layer_of('kdzoo.tasks.classification')
    assert layer_of('kdzoo.utils.checks') == len(LAYERS) - 1
