"""Which module's output is ``stage1`` … ``stageN`` of a timm model.

Hierarchical models (ResNet, MobileNetV2, ConvNeXt, RegNetY, Swin) use timm's ``feature_info``: the last
``num_stages`` entries, which drops the stride-2 stem entry of ResNet / MobileNetV2 / RegNet. Plain models
whose ``feature_info`` lists every block at one reduction (ViT, DeiT, MLP-Mixer, ResMLP) use the block-index
rule of the OFA/FOFA code: stage k ends at block round(f_k · depth) with f = (1/6, 1/3, 5/6, 1), made
strictly increasing, i.e. blocks 2, 4, 10, 12 (1-based) of a 12-block model.
"""

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
