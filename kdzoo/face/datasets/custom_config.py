"""Face configs for your own data (configs/face/custom_*.py, docs/face_recognition.md): one ``face_data`` entry.

mmengine computes a config's derived values when it parses the file, so ``--cfg-options`` could not rebuild the
list of validation loaders from a changed list of set names, nor a head's ``num_classes`` from another data folder.
A custom face config therefore states its data in one top-level entry,

    face_data = dict(
        data_root='data/my_faces',        # train.rec, train.idx, property (tools/face2rec.py)
        verification_sets=['pairs'],      # <data_root>/<name>.bin, or paths of .bin files
        best_metric='acc',                # the checkpoint kept as best: '<first set>/<best_metric>'
    )

with ``val_dataloader``/``val_evaluator`` (and ``test_*``) given as ONE dict each, and ``num_classes='auto'`` in
the margin heads. :func:`resolve_face_data`, registered in ``kdzoo.registry.CONFIG_RESOLVERS`` so that
``kdzoo.tools_support.load_config`` applies it after ``--cfg-options`` (so every tool, and a teacher trained first,
sees the result), expands it:

- ``train_dataloader.dataset.data_root`` becomes ``data_root``;
- each loader/evaluator dict becomes a list with one copy per verification set (evaluator prefix = set name);
- ``default_hooks.checkpoint.save_best`` becomes ``'<first set>/<best_metric>'`` (rule 'greater');
- every ``num_classes='auto'`` under ``model`` becomes the first number of ``<data_root>/property``.

The resolved config holds no ``face_data`` any more, so the config dumped in the work dir runs as it is.
"""
import os.path as osp

from kdzoo.registry import CONFIG_RESOLVERS
from .recordio import read_property

AUTO = 'auto'
FACE_DATA_KEYS = ('data_root', 'verification_sets', 'best_metric')


@CONFIG_RESOLVERS.register_module(name='face_data')
def resolve_face_data(cfg):
    """Expand ``cfg.face_data`` in place (see the module docstring); a config without it is returned unchanged."""
    if cfg.get('face_data') is None:
        return cfg
    face_data = cfg.pop('face_data')
    unknown = sorted(set(face_data) - set(FACE_DATA_KEYS))
    if unknown:
        raise KeyError(f"face_data has unknown key(s) {unknown}; it takes {list(FACE_DATA_KEYS)}")
    if not face_data.get('data_root'):
        raise ValueError("face_data.data_root is empty: give the folder tools/face2rec.py wrote (train.rec, "
                         "train.idx, property), e.g. --cfg-options face_data.data_root=data/my_faces")
    data_root = face_data['data_root']
    sets = verification_sets(face_data.get('verification_sets'), data_root)
    resolve_num_classes(cfg.model, data_root)
    cfg.train_dataloader.dataset.data_root = data_root
    for split in ('val', 'test'):
        if cfg.get(f'{split}_dataloader') is not None:
            cfg[f'{split}_dataloader'], cfg[f'{split}_evaluator'] = per_set(cfg, split, sets)
    best = f"{sets[0][0]}/{face_data.get('best_metric', 'acc')}"
    cfg.default_hooks.setdefault('checkpoint', dict(type='CheckpointHook')).update(save_best=best, rule='greater')
    return cfg


def verification_sets(entries, data_root):
    """``[(name, path)]``: a bare name is ``<data_root>/<name>.bin``, an entry ending in ``.bin`` a path as given."""
    if isinstance(entries, str) or not entries:
        raise ValueError(f"face_data.verification_sets must be a non-empty list of set names or .bin paths, got "
                         f"{entries!r}; e.g. --cfg-options \"face_data.verification_sets=['pairs']\"")
    sets = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"face_data.verification_sets: {entry!r} is not a set name or a .bin path")
        if entry.endswith('.bin'):
            sets.append((osp.splitext(osp.basename(entry))[0], entry))
        else:
            sets.append((entry, osp.join(data_root, entry + '.bin')))
    names = [name for name, _ in sets]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"face_data.verification_sets: {repeated} appear more than once (sets are told apart by "
                         "their file name, which prefixes their metrics); rename the files")
    return sets


def per_set(cfg, split, sets):
    """One copy of the ``<split>_dataloader`` / ``<split>_evaluator`` dict for each verification set."""
    loader, evaluator = cfg[f'{split}_dataloader'], cfg.get(f'{split}_evaluator')
    if not isinstance(loader, dict) or not isinstance(evaluator, dict):
        raise TypeError(f"{split}_dataloader and {split}_evaluator must each be one dict in a config with "
                        f"face_data (the template copied for every verification set), not "
                        f"{type(loader).__name__} / {type(evaluator).__name__}")
    loaders, evaluators = [], []
    for name, path in sets:
        dataset = dict(loader['dataset'], path=path, data_root='')
        loaders.append(dict(loader, dataset=dataset))
        evaluators.append(dict(evaluator, prefix=name))
    return loaders, evaluators


def resolve_num_classes(model_cfg, data_root):
    """Replace every ``num_classes='auto'`` under the model config by the count in ``<data_root>/property``."""
    auto_keys = list(find_auto_num_classes(model_cfg, 'model'))
    if not auto_keys:
        return
    path = osp.join(data_root, 'property')
    try:
        num_classes = read_property(path)[0]
    except (OSError, ValueError) as error:
        error_type = FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError
        raise error_type(
            f"{auto_keys[0]}='auto' is read from {path} (face_data.data_root/property), which could not be read: "
            f"{error}. Write it with `python tools/face2rec.py --root PHOTOS --output {data_root} --resize 112 112` "
            "or point face_data.data_root (FACE_DATA_ROOT) at the folder holding train.rec, train.idx and "
            "property; or give num_classes as a number") from error
    for container, key in list(find_auto_num_classes(model_cfg, 'model', containers=True)):
        container[key] = num_classes


def find_auto_num_classes(node, path, containers=False):
    """The config paths (or ``(dict, key)`` pairs) whose ``num_classes`` is ``'auto'``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes' and value == AUTO:
                yield (node, key) if containers else f'{path}.{key}'
            else:
                yield from find_auto_num_classes(value, f'{path}.{key}', containers)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from find_auto_num_classes(value, f'{path}.{index}', containers)
