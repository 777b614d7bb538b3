"""CivT student tokens: Ren et al., "Co-advise: Cross Inductive Bias Distillation", CVPR 2022
(docs/methods/civt.md).

The adapter turns a timm class-token ViT into a CivT student without touching its ``forward``: the token
sequence becomes [CLS, CONV, INV, (register tokens), patch tokens], and after the final LayerNorm the CONV
and INV tokens get their own heads (Linear D → K, trunc-normal 0.02, zero bias). The CLS token keeps the
ViT's own head, so the student's output is still the CLS logits and DistillModel's CE is the λ0 term of
Eq. 5; the :class:`~kdzoo.methods.CivT` distiller supervises the two token heads, which it reaches through
:class:`~kdzoo.adapters.interfaces.TokenHeads` (``tokens_tap``, ``num_classes``, ``token_logits``).

Hooks, all on the ViT (handles kept, removed by :meth:`CivTTokens.detach`):

* on ``patch_drop`` (runs right after the class token and position embedding are added, before
  ``norm_pre``): inserts the two tokens after the CLS token; the ViT's ``pos_drop`` is applied to them too.
* on ``norm`` (the final LayerNorm): in averaging eval mode, applies the two heads to the token outputs.
* on the ViT itself: in averaging eval mode, replaces the logits by (z_cls + z_conv + z_inv) / 3.
* ``stem='dual'`` only, on ``patch_embed``: replaces its output by the sum of the two stems.

**Prefix tokens.** While attached, ``vit.num_prefix_tokens`` and the wrapper's
tap contract's ``prefix_tokens`` (:class:`~kdzoo.models.TappableClassifier`) are raised by 2, so timm's own
prefix handling and kdzoo's taps strip CLS + CONV + INV from token features; :meth:`detach` restores both.
DistillModel attaches adapters before it probes taps, so every probed
:class:`~kdzoo.taps.FeatureSpec` of the student already counts 3 prefix tokens.

**Stems** (docs/methods/civt.md). ``'learnable'`` (default, the paper): CONV and INV are free parameters (trunc-normal
0.02), like DeiT's distillation token, and the patch embedding is the ViT's own. They get no separate
position embedding: a learnable token plus a learnable position vector is the same free vector.
``'dual'`` (the official code): the patch tokens are conv-stem tokens + involution-stem tokens, CONV and
INV are the mean of each stem's tokens plus a learnable position embedding (the code's 199-position
table). The ViT's ``patch_embed`` still runs (a hook can replace an output, not skip a module) and its
output is discarded, so its parameters are frozen while attached and stay unused; the stems generalise the
code's 16-pixel geometry to patch P (stride 2, then a P/2 × P/2 stride-P/2 projection; P must be even).

**Inference** (docs/methods/civt.md). ``'cls'`` (default, the paper): the CLS head. ``'average'`` (the
code): the mean of the three heads' logits whenever the ViT is in eval mode, so
``DistillModel.predict`` and the validation loop report it. Training always returns the CLS logits.

**Export.** The tokens, heads and stems are parameters of this adapter (``adapters.<i>.*`` in a training
checkpoint), not of the ViT. ``tools/export.py`` writes the bare ViT (``DistillModel.student_state_dict()``)
and this adapter's weights beside it (``NAME.adapters.<ext>``); its ONNX file is the complete student, ViT
plus tokens and heads (:class:`~kdzoo.tools_support.DeployedStudent`). ``tools/test.py`` / ``load_student``
rebuild the student with its adapters from a training checkpoint. The bare ViT alone is not the trained
student: its CLS token attended to CONV and INV during training.
"""
from dataclasses import replace

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from kdzoo.models.involution import Involution
from kdzoo.registry import ADAPTERS
from kdzoo.taps.contract import TapContract
from kdzoo.adapters.base import BaseAdapter
from kdzoo.adapters.interfaces import TokenHeads

STEMS = ('learnable', 'dual')
INFERENCE_MODES = ('cls', 'average')
TOKENS = ('conv', 'inv')               # in sequence order: CONV at index 1, INV at index 2
CONV_STEM_WIDTH = 64
INV_STEM_WIDTH = 32                    # the RedNet-26 stem: 32 channels, then a 3×3 conv to 64
INIT_STD = 0.02


def find_class_token_vit(model, model_name='student'):
    """The timm VisionTransformer inside ``model`` (a kdzoo wrapper or the ViT itself).

    Raises ValueError naming the CivT requirement ``model`` does not meet: a timm VisionTransformer
    whose class token feeds the head (``class_token=True``, ``global_pool='token'``) and that has no
    distillation token of its own.
    """
    vit = model.model if getattr(model, 'kdzoo_module_root', None) == 'model' else model
    if not isinstance(vit, VisionTransformer):
        unmet = 'is not a timm VisionTransformer'
    elif vit.cls_token is None:
        unmet = 'has no class token (class_token=False)'
    elif vit.global_pool != 'token':
        unmet = f"pools its tokens with global_pool={vit.global_pool!r}, so its head does not read the class token"
    elif hasattr(vit, 'dist_token'):
        unmet = 'already has a distillation token (VisionTransformerDistilled); use a plain VisionTransformer'
    else:
        return vit
    raise ValueError(f"CivT needs a class-token ViT student (a timm VisionTransformer with class_token=True "
                     f"and global_pool='token'); the {model_name} ({type(vit).__name__}) {unmet}")


def conv_bn_relu(in_chans, out_chans, kernel_size, stride=1):
    return [nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True)]


def stem_projection(in_chans, embed_dim, patch_size):
    """The stems' last conv: after their stride 2, a (P/2)×(P/2) stride-P/2 conv gives the ViT's grid."""
    return nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size // 2, stride=patch_size // 2)


def conv_stem(in_chans, embed_dim, patch_size):
    """7×7/2 conv (→64) + BN + ReLU, two 3×3 convs (64→64) + BN + ReLU, projection to D (docs/methods/civt.md)."""
    return nn.Sequential(*conv_bn_relu(in_chans, CONV_STEM_WIDTH, 7, stride=2),
                         *conv_bn_relu(CONV_STEM_WIDTH, CONV_STEM_WIDTH, 3),
                         *conv_bn_relu(CONV_STEM_WIDTH, CONV_STEM_WIDTH, 3),
                         stem_projection(CONV_STEM_WIDTH, embed_dim, patch_size))


def involution_stem(in_chans, embed_dim, patch_size):
    """The RedNet-26 stem without its max-pool: 3×3/2 conv (→32) + BN + ReLU, involution (K = 3) + BN +
    ReLU, 3×3 conv (32→64) + BN + ReLU; then the projection to D (docs/methods/civt.md)."""
    return nn.Sequential(*conv_bn_relu(in_chans, INV_STEM_WIDTH, 3, stride=2),
                         Involution(INV_STEM_WIDTH, kernel_size=3, stride=1),
                         nn.BatchNorm2d(INV_STEM_WIDTH), nn.ReLU(inplace=True),
                         *conv_bn_relu(INV_STEM_WIDTH, 2 * INV_STEM_WIDTH, 3),
                         stem_projection(2 * INV_STEM_WIDTH, embed_dim, patch_size))


def kaiming_init_convs(module):
    """The code's stem init: Kaiming-normal weights for every conv (fan_in, ReLU gain)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)


def as_patch_embed_output(feature_map, like):
    """(B, D, h, w) stem output → the layout of the ViT's ``patch_embed`` output ``like``: (B, N, D), or
    (B, h, w, D) for ``dynamic_img_size`` models."""
    tokens = feature_map.permute(0, 2, 3, 1) if like.dim() == 4 else feature_map.flatten(2).transpose(1, 2)
    if tokens.shape != like.shape:
        raise ValueError(f"civt_tokens: the dual stems give {tuple(tokens.shape)} patch tokens but the ViT's "
                         f"patch embedding gives {tuple(like.shape)}; the input size must be a multiple of "
                         "the patch size")
    return tokens


def insert_after_cls(sequence, tokens):
    """[CLS, *rest] → [CLS, *tokens, *rest]; ``tokens`` is (B, 2, D)."""
    return torch.cat([sequence[:, :1], tokens, sequence[:, 1:]], dim=1)


@ADAPTERS.register_module(name=['civt_tokens', 'CivTTokens'])
class CivTTokens(TokenHeads, BaseAdapter):
    """CONV and INV distillation tokens and heads on a timm class-token ViT student (see the module
    docstring); provides :class:`~kdzoo.adapters.interfaces.TokenHeads` to the CivT distiller.

    Args:
        stem: ``'learnable'`` (paper, default) or ``'dual'`` (official code).
        inference: ``'cls'`` (paper, default) or ``'average'`` (code).

    Parameters are created by :meth:`attach` from the ViT's width, class count, input channels and
    patch size; attaching again after :meth:`detach` reuses them.
    """

    def __init__(self, stem='learnable', inference='cls'):
        super().__init__(target='student')
        if stem not in STEMS:
            raise ValueError(f"civt_tokens: stem must be one of {STEMS}, got {stem!r}")
        if inference not in INFERENCE_MODES:
            raise ValueError(f"civt_tokens: inference must be one of {INFERENCE_MODES}, got {inference!r}")
        self.stem = stem
        self.inference = inference
        self._attached = None          # (model, vit): plain references, not submodules
        self._saved = {}               # what attach changed on the model, restored by detach
        self._stem_tokens = None       # dual stem: (B, 2, D) pooled stem tokens of the running forward
        self._head_logits = None       # averaging eval: the token heads' logits of the running forward

    # ------------------------------------------------------------------ parameters
    def _build(self, vit):
        dim, num_classes = vit.embed_dim, vit.num_classes
        if num_classes <= 0:
            raise ValueError("civt_tokens: the student ViT has no classifier (num_classes=0); the CONV and "
                             "INV heads need its class count")
        self.head_conv = nn.Linear(dim, num_classes)
        self.head_inv = nn.Linear(dim, num_classes)
        for head in (self.head_conv, self.head_inv):
            trunc_normal_(head.weight, std=INIT_STD)
            nn.init.zeros_(head.bias)
        if self.stem == 'learnable':
            self.tokens = nn.Parameter(trunc_normal_(torch.zeros(1, len(TOKENS), dim), std=INIT_STD))
        else:
            self._build_dual_stems(vit, dim)
        self.to(device=vit.cls_token.device, dtype=vit.cls_token.dtype)

    def _build_dual_stems(self, vit, dim):
        patch_size = vit.patch_embed.patch_size
        if patch_size[0] != patch_size[1] or patch_size[0] % 2:
            raise ValueError(f"civt_tokens: stem='dual' needs a square, even patch size, got {patch_size}")
        in_chans = vit.patch_embed.proj.in_channels
        self.conv_stem = conv_stem(in_chans, dim, patch_size[0])
        self.inv_stem = involution_stem(in_chans, dim, patch_size[0])
        kaiming_init_convs(self.conv_stem)
        kaiming_init_convs(self.inv_stem)
        self.token_pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, len(TOKENS), dim), std=INIT_STD))

    def _check_fits(self, vit):
        if self.head_conv.in_features != vit.embed_dim or self.head_conv.out_features != vit.num_classes:
            raise ValueError(f"civt_tokens: built for width {self.head_conv.in_features} and "
                             f"{self.head_conv.out_features} classes, cannot attach to a ViT of width "
                             f"{vit.embed_dim} with {vit.num_classes} classes")

    # ------------------------------------------------------------------ attach / detach
    def attach(self, model):
        if self._attached is not None:
            raise RuntimeError("civt_tokens is already attached; detach it first")
        vit = find_class_token_vit(model)
        if hasattr(self, 'head_conv'):
            self._check_fits(vit)
        else:
            self._build(vit)
        self._attached = (model, vit)
        self._raise_prefix_count(model, vit)
        if self.stem == 'dual':
            self._saved['patch_embed_grad'] = [p.requires_grad for p in vit.patch_embed.parameters()]
            vit.patch_embed.requires_grad_(False)
            self._handles.append(vit.patch_embed.register_forward_hook(self._replace_patch_embedding))
        self._handles += [vit.patch_drop.register_forward_hook(self._insert_tokens),
                          vit.norm.register_forward_hook(self._apply_token_heads),
                          vit.register_forward_hook(self._average_heads)]

    def detach(self):
        if self._attached is None:
            return
        model, vit = self._attached
        super().detach()
        vit.num_prefix_tokens = self._saved.pop('vit_prefix')
        if 'wrapper_taps' in self._saved:
            model.kdzoo_taps = self._saved.pop('wrapper_taps')
        for param, requires_grad in zip(vit.patch_embed.parameters(), self._saved.pop('patch_embed_grad', ())):
            param.requires_grad_(requires_grad)
        self._attached, self._stem_tokens, self._head_logits = None, None, None

    def _raise_prefix_count(self, model, vit):
        self._saved['vit_prefix'] = vit.num_prefix_tokens
        vit.num_prefix_tokens += len(TOKENS)
        if model is not vit and isinstance(getattr(model, 'kdzoo_taps', None), TapContract):
            self._saved['wrapper_taps'] = model.kdzoo_taps
            model.kdzoo_taps = replace(model.kdzoo_taps, prefix_tokens=vit.num_prefix_tokens)

    @property
    def vit(self):
        if self._attached is None:
            raise RuntimeError("civt_tokens is not attached to a student")
        return self._attached[1]

    @property
    def final_norm_path(self):
        """Module path of the ViT's final norm in the attached model: the tap whose tokens the heads read."""
        model, vit = self._attached
        return next(name for name, module in model.named_modules() if module is vit.norm)

    @property
    def tokens_tap(self):
        """TokenHeads: the heads read the final-norm tokens."""
        return self.final_norm_path

    @property
    def num_classes(self):
        return self.head_conv.out_features

    # ------------------------------------------------------------------ heads
    def token_logits(self, final_tokens):
        """``{'conv': z_conv, 'inv': z_inv}`` from the final-norm output (B, N, D) of the student."""
        return {'conv': self.head_conv(final_tokens[:, 1]), 'inv': self.head_inv(final_tokens[:, 2])}

    def _averaging(self):
        return self.inference == 'average' and not self.vit.training

    # ------------------------------------------------------------------ hooks
    def _replace_patch_embedding(self, patch_embed, args, output):
        image = args[0]
        conv_map, inv_map = self.conv_stem(image), self.inv_stem(image)
        pooled = torch.stack([conv_map.mean((2, 3)), inv_map.mean((2, 3))], dim=1)
        self._stem_tokens = pooled + self.token_pos_embed
        return as_patch_embed_output(conv_map + inv_map, output)

    def _current_tokens(self, batch_size):
        if self.stem == 'learnable':
            return self.tokens.expand(batch_size, -1, -1)
        tokens, self._stem_tokens = self._stem_tokens, None
        return tokens

    def _insert_tokens(self, patch_drop, args, output):
        return insert_after_cls(output, self.vit.pos_drop(self._current_tokens(output.shape[0])))

    def _apply_token_heads(self, norm, args, output):
        if self._averaging():
            self._head_logits = self.token_logits(output)

    def _average_heads(self, vit, args, output):
        if self._averaging():
            heads, self._head_logits = self._head_logits, None
            return (output + heads['conv'] + heads['inv']) / 3

    def extra_repr(self):
        return f"stem={self.stem!r}, inference={self.inference!r}"
