"""Which module's output is ``stage1`` … ``stageN`` of a timm model.

Hierarchical models (ResNet, MobileNetV2, ConvNeXt, RegNetY, Swin) use timm's ``feature_info``: the last
``num_stages`` entries, which drops the stride-2 stem entry of ResNet / MobileNetV2 / RegNet. Plain models
whose ``feature_info`` lists every block at one reduction (ViT, DeiT, MLP-Mixer, ResMLP) use the block-index
rule of the OFA/FOFA code: stage k ends at block round(f_k · depth) with f = (1/6, 1/3, 5/6, 1), made
strictly increasing, i.e. blocks 2, 4, 10, 12 (1-based) of a 12-block model.
"""
import functools

PLAIN_STAGE_FRACTIONS = (1 / 6, 1 / 3, 5 / 6, 1.0)


def plain_stage_blocks(depth, fractions=PLAIN_STAGE_FRACTIONS):
    """1-based indices of the blocks that end each stage of a plain (non-hierarchical) model."""
    blocks = []
    for fraction in fractions:
        index = max(round(fraction * depth), 1)
        if blocks and index <= blocks[-1]:
            index = blocks[-1] + 1
        blocks.append(min(index, depth))
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"a plain model with {depth} blocks cannot be split into {len(fractions)} stages; "
                         "set `stages=[...]` (module paths) on the model instead")
    return blocks


def is_plain(feature_info):
    return len({info['reduction'] for info in feature_info}) == 1 and len(feature_info) > 1


def timm_stage_paths(model, num_stages=4):
    """Module paths (relative to the timm model) of its stage outputs."""
    feature_info = getattr(model, 'feature_info', None)
    if not feature_info:
        raise ValueError(f"{type(model).__name__} has no timm feature_info; set `stages=[...]` (module paths) "
                         "on the model to declare its stages")
    if is_plain(feature_info):
        blocks = plain_stage_blocks(len(feature_info), PLAIN_STAGE_FRACTIONS[-num_stages:]
                                    if num_stages <= 4 else [k / num_stages for k in range(1, num_stages + 1)])
        return [feature_info[b - 1]['module'] for b in blocks]
    return [info['module'] for info in feature_info[-num_stages:]]


def branch_paths(feature_info):
    """``feature_info`` entries as tap paths; a module listed more than once (one entry per branch of a
    multi-branch module such as CrossViT's blocks) gets an explicit branch selector, ``'blocks.0[1]'``."""
    seen = {}
    paths = []
    for info in feature_info:
        module = info['module']
        branch = seen[module] = seen.get(module, -1) + 1
        paths.append((module, branch))
    multi = {module for module, branch in paths if branch}
    return [f'{module}[{branch}]' if module in multi else module for module, branch in paths]


def select_stage_entries(feature_info, num_stages):
    """Indices of the ``feature_info`` entries that are the stages (see the module docstring).

    A multi-branch model's stages come from its last-listed branch, each selected explicitly.
    """
    paths = branch_paths(feature_info)
    indices = list(range(len(feature_info)))
    if len(set(paths)) != len({info['module'] for info in feature_info}):
        last_branch = max(int(p.rpartition('[')[2][:-1]) for p in paths if p.endswith(']'))
        indices = [i for i in indices if paths[i].endswith(f'[{last_branch}]')]
    entries = [feature_info[i] for i in indices]
    if is_plain(entries) and len(entries) > num_stages:
        fractions = PLAIN_STAGE_FRACTIONS[-num_stages:] if num_stages <= 4 \
            else [k / num_stages for k in range(1, num_stages + 1)]
        return [indices[b - 1] for b in plain_stage_blocks(len(entries), fractions)]
    return indices[-num_stages:]


def timm_stage_plan(model, num_stages=4):
    """How to read a timm model's stages: ``(paths, channels, intermediate_indices, note)``.

    ``paths`` are the ``feature_info`` modules (with branch selectors) when every one of them exists and
    runs its own forward; then ``intermediate_indices`` is None and hooks read them. Otherwise, when the
    model offers ``forward_intermediates``, the stages are its intermediates ``intermediate_indices`` (the
    wrapper routes them through identity modules) and ``paths`` is None. With neither, ``paths`` is empty
    and ``note`` says why. ``channels`` are timm's for each stage.
    """
    from .contract import find_module, is_container, split_branch
    feature_info = getattr(model, 'feature_info', None)
    if not feature_info:
        return [], None, None, f"{type(model).__name__} has no timm feature_info"
    indices = select_stage_entries(feature_info, num_stages)
    all_paths = branch_paths(feature_info)
    paths = [all_paths[i] for i in indices]
    channels = [feature_info[i]['num_chs'] for i in indices]
    unusable = []
    for path in paths:
        module_path, _ = split_branch(path)
        found = find_module(model, module_path)
        if found is None:
            unusable.append(f"{path!r} is not a module")
        elif is_container(model.get_submodule(found)):
            unusable.append(f"{path!r} is a {type(model.get_submodule(found)).__name__} that never runs itself")
    if not unusable:
        return paths, channels, None, ''
    if hasattr(model, 'forward_intermediates') and hasattr(model, 'forward_head'):
        return None, channels, indices, ''
    return [], None, None, (f"timm's feature_info names stage modules that cannot be hooked "
                            f"({'; '.join(unusable)}) and the model has no forward_intermediates")


def traced_stage_inputs(model, stage_paths, input_shape, seed=0):
    """Paths of the modules whose inputs start each stage, found by tracing one forward of ``model`` on a
    random batch of ``input_shape`` (B, C, H, W); None where the trace cannot tell.

    A stage's feature is produced by the latest-returning module whose output holds the same values as that
    stage's tap (a reshape or permute in between is allowed: timm's ``forward_intermediates`` hands out
    reshaped copies). Stage 1 starts at its producer. Stage k > 1 starts where the data flow into its
    producer (each module's input traced to the module that returned that very tensor) leaves the modules
    called after stage k - 1's producer returned: HRNet's branch module, Twins' first module after its patch
    embedding.
    """
    import itertools

    import torch

    from .contract import is_container, split_branch
    from .recorder import branches_or_tensor
    counter = itertools.count()
    calls, features, handles = {}, {}, []   # path -> [start, end, input tensor, output tensor]

    def started(path, module, args):
        calls.setdefault(path, [next(counter), None, args[0] if args and torch.is_tensor(args[0]) else None, None])

    def returned(path, module, args, output):
        call = calls[path]
        if call[1] is None:
            call[1], call[3] = next(counter), output if torch.is_tensor(output) else None

    def observed(index, branches, module, args, output):
        for branch in branches:
            output = output[branch]
        features.setdefault(index, (next(counter), branches_or_tensor(output)))

    stage_modules = set()
    for index, path in enumerate(stage_paths):
        module_path, branches = split_branch(path)
        stage_modules.add(module_path)
        handles.append(model.get_submodule(module_path).register_forward_hook(
            functools.partial(observed, index, branches)))
    for path, module in model.named_modules():
        if path and path not in stage_modules and not is_container(module):
            handles += [module.register_forward_pre_hook(functools.partial(started, path)),
                        module.register_forward_hook(functools.partial(returned, path))]
    was_training = model.training
    generator = torch.Generator().manual_seed(seed)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(*input_shape, generator=generator).to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    finished = [(call[1], path) for path, call in calls.items() if call[1] is not None and call[3] is not None]
    made_by = {}
    for end, path in sorted(finished, reverse=True):   # the first module to return a tensor object made it
        made_by[id(calls[path][3])] = path

    def producer(index):
        seen, feature = features.get(index, (None, None))
        if not torch.is_tensor(feature):
            return None
        values = feature.flatten().sort().values
        matching = [(end, path) for end, path in finished if end < seen and calls[path][3].numel() == values.numel()
                    and torch.equal(calls[path][3].flatten().sort().values, values)]
        return max(matching)[1] if matching else None

    def start_of(path, after):
        while True:
            source = calls[path][2]
            previous = made_by.get(id(source)) if source is not None else None
            if previous is None or previous == path or calls[previous][0] <= after:
                return path
            path = previous

    producers = [producer(index) for index in range(len(stage_paths))]
    inputs = [producers[0]]
    for index in range(1, len(stage_paths)):
        before = producers[index - 1]
        inputs.append(start_of(producers[index], calls[before][1]) if producers[index] and before else None)
    return inputs
