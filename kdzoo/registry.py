"""kdzoo's registries in the ``kdzoo`` scope: children of mmengine's, plus four of its own.

mmengine has no registry for distillers or adapters (and allows one child per scope under its MODELS),
so ``DISTILLERS``, ``ADAPTERS``, ``TASKS`` (:mod:`kdzoo.tasks`) and ``CONFIG_RESOLVERS`` are root registries of
the ``kdzoo`` scope.

Every registry builds through :func:`build_or_explain`, so an unknown ``type`` fails with the names that
are registered and the closest matches, instead of mmengine's bare "not in the registry".
"""
import difflib
import inspect
import re

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry, build_from_cfg, build_model_from_cfg


def registered_names(registry):
    """Names a ``type`` can take in ``registry``: its own, then its ancestors'."""
    names, node = [], registry
    while node is not None:
        names.extend(k for k in node.module_dict if k not in names)
        node = node.parent
    return names


LISTING_LIMIT = 80


def unknown_name_error(kind, name, choices, how_to_list=None):
    """The error for an unknown name: closest matches, and every valid name when there are few."""
    choices = list(choices)
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    if len(choices) > LISTING_LIMIT and how_to_list:
        return KeyError(f"Unknown {kind} {name!r}.{hint} {len(choices)} are available; {how_to_list}")
    listed = ', '.join(sorted(choices, key=str.lower))
    return KeyError(f"Unknown {kind} {name!r}.{hint} Available: {listed}")


def _check_type(cfg, registry):
    obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
    if isinstance(obj_type, str) and registry.get(obj_type) is None:
        own = list(registry.module_dict)
        raise unknown_name_error(registry.name, obj_type, own or registered_names(registry))


def accepted_arguments(obj):
    """Keyword names ``obj`` (a class or function) accepts, or None if they cannot be known.

    ``**kwargs`` that a class passes on to ``super().__init__`` are followed up the MRO, so
    ``KD(temperature, **kwargs)`` accepts ``temperature`` plus ``BaseDistiller``'s arguments; ``**kwargs``
    sent elsewhere (e.g. to timm) make the set open, and the callee checks them.
    """
    chain = [c for c in obj.__mro__ if '__init__' in vars(c)] if inspect.isclass(obj) else [obj]
    names = []
    for owner in chain:
        function = owner.__init__ if inspect.isclass(owner) else owner
        if inspect.isclass(owner) and owner.__module__.startswith('torch.'):
            return names
        parameters = list(inspect.signature(function).parameters.values())
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ('self', *names)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names
        if not inspect.isclass(owner) or not _forwards_kwargs_to_parent(function):
            return None
    return None


def _forwards_kwargs_to_parent(function):
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return re.search(r'super\(\)\.__init__\([^)]*\*\*kwargs', source) is not None


def check_arguments(cfg, obj, kind):
    """Reject keys ``obj`` would not accept, listing the ones it does (no silently ignored typos)."""
    accepted = accepted_arguments(obj)
    if accepted is None:
        return
    unknown = [k for k in cfg if k not in ('type', '_scope_') and k not in accepted]
    if unknown:
        suggestions = {k: difflib.get_close_matches(k, accepted, n=1) for k in unknown}
        hints = ''.join(f" ({k!r}: did you mean {v[0]!r}?)" for k, v in suggestions.items() if v)
        raise TypeError(f"{kind} {cfg['type']!r} got unknown keys {unknown}{hints}. "
                        f"Accepted: {', '.join(accepted)}")


def build_or_explain(cfg, registry, default_args=None):
    if isinstance(cfg, (list, tuple)):
        return [build_or_explain(c, registry, default_args) for c in cfg]
    _check_type(cfg, registry)
    if isinstance(cfg.get('type'), str):
        check_arguments(cfg, registry.get(cfg['type']), registry.name)
    return build_from_cfg(cfg, registry, default_args)


def build_model_or_explain(cfg, registry, default_args=None):
    if not isinstance(cfg, (list, tuple)):
        _check_type(cfg, registry)
        if isinstance(cfg.get('type'), str):
            check_arguments(cfg, registry.get(cfg['type']), registry.name)
    return build_model_from_cfg(cfg, registry, default_args)


MODELS = Registry('model', parent=MMENGINE_MODELS, scope='kdzoo', locations=['kdzoo.models', 'kdzoo.face'],
                  build_func=build_model_or_explain)
DISTILLERS = Registry('distiller', scope='kdzoo', locations=['kdzoo.methods', 'kdzoo.face'],
                      build_func=build_or_explain)
ADAPTERS = Registry('adapter', scope='kdzoo', locations=['kdzoo.methods', 'kdzoo.face'],
                    build_func=build_or_explain)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='kdzoo', locations=['kdzoo.datasets', 'kdzoo.face'],
                    build_func=build_or_explain)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='kdzoo',
                      locations=['kdzoo.datasets', 'kdzoo.face'],
                      build_func=build_or_explain)
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='kdzoo', locations=['kdzoo.face'],
                   build_func=build_or_explain)
TASKS = Registry('task', scope='kdzoo', locations=['kdzoo.tasks', 'kdzoo.face'], build_func=build_or_explain)
# Functions ``cfg -> cfg`` that kdzoo.tools_support.load_config applies to every config after --cfg-options
# (a vertical's own config keys, e.g. the face configs' ``face_data``), in registration order.
CONFIG_RESOLVERS = Registry('config_resolver', scope='kdzoo', locations=['kdzoo.face'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='kdzoo', locations=['kdzoo.engine'],
                 build_func=build_or_explain)


def _plain_children():
    """Children of mmengine's other roots, so Runner look-ups in the kdzoo scope resolve without warnings."""
    import mmengine.registry as root
    names = ('DATA_SAMPLERS', 'EVALUATOR', 'FUNCTIONS', 'INFERENCERS', 'LOG_PROCESSORS', 'LOOPS',
             'MODEL_WRAPPERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'OPTIMIZERS', 'PARAM_SCHEDULERS',
             'RUNNERS', 'RUNNER_CONSTRUCTORS', 'STRATEGIES', 'TASK_UTILS', 'VISBACKENDS', 'VISUALIZERS',
             'WEIGHT_INITIALIZERS')
    return {name: Registry(getattr(root, name).name, parent=getattr(root, name), scope='kdzoo') for name in names}


globals().update(_plain_children())
