"""What a model expects as input, for the error raised when the build-time probe cannot run it."""
import torch.nn as nn


def expected_input(model):
    """What ``model`` says about its input: channels of its first convolution or patch embedding, the image size
    a strict patch embedding requires, and timm's ``pretrained_cfg['input_size']`` when nothing else is known."""
    facts = []
    embed = next((m for m in model.modules() if hasattr(m, 'img_size') and hasattr(m, 'proj')), None)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if first_conv is not None:
        facts.append(f"its first convolution takes {first_conv.in_channels} channel(s)")
    if embed is not None and getattr(embed, 'strict_img_size', False) and embed.img_size:
        height, width = embed.img_size
        facts.append(f"its patch embedding takes {height}x{width} images only")
    if not facts:
        cfg = next((getattr(m, 'pretrained_cfg', None) for m in model.modules() if getattr(m, 'pretrained_cfg', None)),
                   None)
        if cfg and cfg.get('input_size'):
            facts.append(f"timm's pretrained_cfg gives input_size {tuple(cfg['input_size'])}")
    return '; '.join(facts)


def input_size_error(model, name, input_size, error):
    """A ValueError naming the model, ``input_size`` and what the model expects; raise it ``from error``."""
    network = getattr(model, 'model', model)
    expects = expected_input(model)
    cause = str(error).strip().splitlines()[0].rstrip('.') if str(error).strip() else 'no message'
    who = name if name in ('student', 'model') else f"teacher {name!r}"
    return ValueError(
        f"{who} ({type(network).__name__}) cannot run on model.input_size={tuple(input_size)} (C, H, W): "
        f"{type(error).__name__}: {cause}." + (f" The model expects: {expects}." if expects else '') +
        " Set model.input_size to the (C, H, W) of the images the data pipeline gives, and build the model for them "
        "(in_chans, img_size).")
