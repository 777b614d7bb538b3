"""APT — Adaptable Prompting Teacher: learnable prompt tokens inside a frozen Swin or ViT teacher.

Paper: Zhao, Zhu, He, Zhang, Lei, "Cross-Architecture Distillation for Face Recognition", ACM MM 2023
(arXiv 2306.14662); docs/methods/urfm.md (APT, what trains, the window mechanics). The paper
publishes no code: the mechanics below follow VPT's Swin variant and are [PROPOSED] where docs/methods/urfm.md says so.

Swin teacher (every timm ``SwinTransformerStage``, i.e. every "basic layer" i of width d_i):

1. At the start of layer i (after its patch merging, which timm >= 0.9 puts at the *start* of a stage) the
   layer receives fresh prompts p_i ∈ R^{t×d_i} [paper].
2. In every block, the t prompts (after the block's ``norm1``) are copied into every (shifted) window, so a
   window attends over t + 49 tokens; the relative-position bias and the shift mask are zero-padded for the
   prompt rows and columns [PROPOSED, VPT].
3. After attention the t prompt outputs of all windows of an image are averaged [PROPOSED, VPT]; residual
   and MLP (the block's own ``norm2`` / ``mlp`` / drop-paths) apply to the prompts as to the tokens [paper].
4. At the end of layer i the prompt outputs are kept aside (:meth:`APT.last_prompt_outputs`) and dropped:
   the next layer's patch merging sees exactly the patch tokens [paper: "ignored in patch merging"].

ViT teacher (timm ``vision_transformer.Block``, e.g. kdzoo's FaceViT) [PROPOSED, docs/methods/urfm.md]: VPT-deep. Fresh
prompts are inserted after the prefix (class) tokens before every block and removed after it; the removed
outputs are kept aside per block.

How the teacher's forward is changed, without touching its code or its state-dict keys:

* forward (pre-)hooks on each stage's ``blocks`` container start and end a layer's prompts, hooks on each
  Swin block carry the prompts through ``norm1`` / residual / ``mlp``, and hooks on each ViT block insert
  and remove them (the removing hook is prepended, so feature taps on a block see its patch tokens only);
* each Swin block's ``attn`` (timm ``WindowAttention``) is replaced in place by a
  :class:`PromptedWindowAttention` that *shares* the original's parameter, buffer and sub-module registries.
  The teacher therefore keeps every state-dict key and parameter name (``layers.0.blocks.0.attn.qkv.weight``
  ...), checkpoints load as before, device / dtype moves reach both, and without pending prompts the
  original module itself runs. :meth:`APT.detach` puts the original modules back.

Prompts act only while the adapter is in training mode; in eval mode and inside :meth:`APT.prompts_disabled`
the teacher runs exactly as the bare teacher (same modules, same code). The prompts are the adapter's only
parameters; the teacher stays frozen (DistillModel runs it with autograd because this adapter trains).

Initialisation [PROPOSED, docs/methods/urfm.md]: VPT's uniform U(−v, v), v = √(6 / (3·patch² + d_i)), the patch size read from
the teacher's ``patch_embed.proj`` convolution; ``init='trunc_normal'`` uses trunc-normal(0.02) instead.
Default t = 25 [paper]. Prompt dropout is 0 [PROPOSED].

Not supported: gradient checkpointing of a prompted Swin stage (the recomputation would run the prompt hooks
twice; refused at attach) and resizing a teacher (``set_input_size``) after attach.
"""
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.swin_transformer import SwinTransformerBlock, SwinTransformerStage, WindowAttention
from timm.models.vision_transformer import Block as VitBlock

from kdzoo.registry import ADAPTERS
from kdzoo.taps.recorder import unwrap
from kdzoo.adapters.base import BaseAdapter, SwitchablePrompts
from kdzoo.adapters.interfaces import PromptOutputs

PROMPT_INITS = ('vpt', 'trunc_normal')


class PromptedWindowAttention(nn.Module):
    """A timm ``WindowAttention`` in which t prompt tokens may join every window.

    The module is a second view of the original attention: it shares its ``_parameters``, ``_buffers`` and
    ``_modules`` dicts, so names, state-dict keys and ``.to()`` moves are the original's. The block's
    pre-hook leaves the (normalised) prompts in :attr:`pending_prompts`; without them the original module
    runs unchanged.
    """

    def __init__(self, attention):
        super().__init__()
        self._parameters = attention._parameters
        self._buffers = attention._buffers
        self._non_persistent_buffers_set = attention._non_persistent_buffers_set
        self._modules = attention._modules
        self._original = (attention,)        # a tuple: a plain reference, not a second registration
        self.training = attention.training
        self.num_heads = attention.num_heads
        self.scale = attention.scale
        self.pending_prompts = None          # (B, t, C) set by the block's pre-hook, consumed by forward
        self.prompt_output = None            # (B, t, C) window-averaged prompt outputs of the last call

    @property
    def original(self):
        return self._original[0]

    @property
    def fused_attn(self):
        return self.original.fused_attn

    @fused_attn.setter
    def fused_attn(self, value):  # attention taps switch the fused kernel off on the module at the path
        self.original.fused_attn = value

    def train(self, mode=True):
        # the original's own flag decides dropout in its fused-attention path
        self.original.training = mode
        return super().train(mode)

    def forward(self, x, mask=None):
        prompts, self.pending_prompts = self.pending_prompts, None
        if prompts is None:
            return self.original(x, mask)
        batch, num_prompts = prompts.shape[:2]
        windows_per_image = x.shape[0] // batch
        # window_partition orders windows image by image, so each image's prompts repeat over its windows
        tokens = torch.cat([prompts.repeat_interleave(windows_per_image, dim=0), x], dim=1)
        out = self.attend(tokens, self.padded_bias(num_prompts, x.shape[1], mask), windows_per_image)
        self.prompt_output = out[:, :num_prompts].reshape(batch, windows_per_image, num_prompts, -1).mean(1)
        return out[:, num_prompts:]

    def padded_bias(self, num_prompts, window_area, mask):
        """(1 or nW, nH, t + N, t + N): relative-position bias plus shift mask, zero on prompt rows/columns."""
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(window_area, window_area, -1).permute(2, 0, 1)
        bias = F.pad(bias, (num_prompts, 0, num_prompts, 0)).unsqueeze(0)
        if mask is not None:
            bias = bias + F.pad(mask, (num_prompts, 0, num_prompts, 0)).unsqueeze(1)
        return bias

    def attend(self, tokens, bias, windows_per_image):
        num_windows, length, _ = tokens.shape
        qkv = self.qkv(tokens).reshape(num_windows, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        if bias.shape[0] > 1:  # one mask per window position, repeated for every image
            logits = logits.view(-1, windows_per_image, *logits.shape[1:]) + bias.unsqueeze(0)
            logits = logits.view(num_windows, *logits.shape[2:])
        else:
            logits = logits + bias
        attn = self.attn_drop(logits.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(num_windows, length, -1)
        return self.proj_drop(self.proj(out))


def vpt_uniform_bound(patch_size, dim):
    """VPT's prompt init bound v = √(6 / (3·patch² + d))."""
    return math.sqrt(6.0 / (3 * patch_size[0] * patch_size[1] + dim))


def find_patch_size(model):
    """(h, w) kernel of the teacher's patch-embedding convolution, or None."""
    for name, module in model.named_modules():
        if name.split('.')[-1] == 'patch_embed' and isinstance(getattr(module, 'proj', None), nn.Conv2d):
            return tuple(module.proj.kernel_size)
    return None


def swin_stages(model):
    """{path: stage} of every timm Swin stage whose blocks use ``WindowAttention``, in module order."""
    stages = {path: m for path, m in model.named_modules() if isinstance(m, SwinTransformerStage)}
    for path, stage in stages.items():
        for index, block in enumerate(stage.blocks):
            if not isinstance(block, SwinTransformerBlock) or \
                    not isinstance(block.attn, (WindowAttention, PromptedWindowAttention)):
                raise TypeError(f"apt: block {index} of Swin stage {path!r} is {type(block).__name__} with "
                                f"attention {type(getattr(block, 'attn', None)).__name__}; APT prompts timm "
                                "SwinTransformerBlock / WindowAttention blocks")
            if isinstance(block.attn, PromptedWindowAttention):
                raise ValueError(f"apt: stage {path!r} is already prompted by another APT adapter")
    return stages


def vit_blocks(model):
    """{path: block} of every timm ViT ``Block``, in module order."""
    return {path: m for path, m in model.named_modules() if isinstance(m, VitBlock)}


def owner_of(model, path):
    """The module holding the ``blocks`` container that ``path`` (``...blocks.<k>``) belongs to."""
    owner_path = path.rsplit('.', 2)[0] if path.count('.') >= 2 else ''
    return model.get_submodule(owner_path) if owner_path else model


@ADAPTERS.register_module(name=['apt', 'APT'])
class APT(PromptOutputs, SwitchablePrompts, BaseAdapter):
    """Learnable prompts in every layer of a frozen Swin teacher (or every block of a ViT teacher).

    Args:
        target: the teacher this adapter attaches to (a name in ``DistillModel.teachers``; ``'teacher'`` is
            the only one).
        num_prompts: t, prompts per Swin basic layer / per ViT block (25 in the paper).
        init: ``'vpt'`` (uniform, VPT's bound from the patch size and width) or ``'trunc_normal'`` (std 0.02).

    After :meth:`attach`, ``prompts`` holds one (t, d) parameter per Swin stage (``stage1`` …) or ViT block
    (``block0`` …), and :attr:`prompted_paths` the teacher module paths whose prompt outputs are kept
    (:meth:`last_prompt_outputs`): the Swin stage paths (the ``stage<k>`` taps) or the ViT block paths. Those
    two are :class:`~kdzoo.adapters.interfaces.PromptOutputs`, the interface the URFM distiller binds by.
    """

    def __init__(self, target='teacher', num_prompts=25, init='vpt'):
        super().__init__(target)
        if not isinstance(num_prompts, int) or num_prompts < 1:
            raise ValueError(f"apt: num_prompts must be an integer >= 1, got {num_prompts!r}")
        if init not in PROMPT_INITS:
            raise ValueError(f"apt: init must be one of {PROMPT_INITS}, got {init!r}")
        self.num_prompts = num_prompts
        self.init = init
        self.prompts = nn.ParameterDict()
        self.architecture = None              # 'swin' or 'vit' once attached
        self.prompted_paths = ()
        self._enabled = True
        self._wrapped = []                    # (block, original attention) pairs to restore on detach
        self._live = {}                       # Swin stage path -> prompts being carried through its blocks
        self._inserted = set()                # ViT block paths whose input got prompts in this forward
        self._outputs = {}                    # prompted path -> prompt outputs of the latest forward
        self._num_prefix = 0

    # ------------------------------------------------------------------ attach
    def attach(self, model):
        model = unwrap(model)
        if self.prompts:
            raise RuntimeError("apt: this adapter is already attached; build one APT adapter per teacher")
        stages, blocks = swin_stages(model), vit_blocks(model)
        if stages:
            self._attach_swin(model, stages)
        elif blocks:
            self._attach_vit(model, blocks)
        else:
            raise TypeError(f"apt: {type(model).__name__} has no Swin stages (timm SwinTransformerStage with "
                            "WindowAttention blocks) and no ViT blocks (timm vision_transformer.Block). APT "
                            "inserts prompt tokens into window / self-attention, so it needs a Swin or ViT "
                            "teacher")
        self._init_prompts(find_patch_size(model), type(model).__name__)

    def _attach_swin(self, model, stages):
        self.architecture = 'swin'
        for k, (path, stage) in enumerate(stages.items(), start=1):
            if stage.grad_checkpointing:
                raise ValueError(f"apt: Swin stage {path!r} uses gradient checkpointing, which would run the "
                                 "prompt hooks twice; turn it off on the teacher")
            name = f'stage{k}'
            self.prompts[name] = nn.Parameter(torch.empty(self.num_prompts, stage.blocks[0].dim))
            self._handles += [
                stage.blocks.register_forward_pre_hook(functools.partial(self._start_layer, name, path)),
                stage.blocks.register_forward_hook(functools.partial(self._end_layer, path))]
            for block in stage.blocks:
                self._wrap_attention(block)
                self._handles += [
                    block.register_forward_pre_hook(functools.partial(self._prompts_into_block, path)),
                    block.register_forward_hook(functools.partial(self._prompts_through_block, path))]
        self.prompted_paths = tuple(stages)

    def _wrap_attention(self, block):
        original = block.attn
        block.attn = PromptedWindowAttention(original)
        self._wrapped.append((block, original))

    def _attach_vit(self, model, blocks):
        self.architecture = 'vit'
        first = next(iter(blocks))
        owner = owner_of(model, first)
        self._num_prefix = int(getattr(owner, 'num_prefix_tokens', getattr(owner, 'kdzoo_num_prefix_tokens', 0)))
        for k, (path, block) in enumerate(blocks.items()):
            name = f'block{k}'
            self.prompts[name] = nn.Parameter(torch.empty(self.num_prompts, block.norm1.normalized_shape[0]))
            self._handles += [
                block.register_forward_pre_hook(functools.partial(self._insert_vit_prompts, name, path)),
                block.register_forward_hook(functools.partial(self._remove_vit_prompts, path), prepend=True)]
        self.prompted_paths = tuple(blocks)

    def _init_prompts(self, patch_size, model_name):
        if self.init == 'vpt' and patch_size is None:
            raise ValueError(f"apt: init='vpt' needs the patch size, but {model_name} has no "
                             "`patch_embed.proj` convolution; use init='trunc_normal'")
        for prompt in self.prompts.values():
            if self.init == 'vpt':
                bound = vpt_uniform_bound(patch_size, prompt.shape[1])
                nn.init.uniform_(prompt, -bound, bound)
            else:
                trunc_normal_(prompt, std=0.02)

    def detach(self):
        super().detach()
        for block, original in self._wrapped:
            block.attn = original
        self._wrapped = []
        self._live, self._outputs, self._inserted = {}, {}, set()

    # ------------------------------------------------------------------ Swin hooks
    def _start_layer(self, name, path, blocks, args):
        self._outputs[path] = None
        self._live[path] = self.prompts[name].expand(args[0].shape[0], -1, -1) if self.prompting else None

    def _prompts_into_block(self, path, block, args):
        prompts = self._live.get(path)
        if prompts is not None:
            block.attn.pending_prompts = block.norm1(prompts)

    def _prompts_through_block(self, path, block, args, output):
        prompts = self._live.get(path)
        if prompts is None:
            return
        attended, block.attn.prompt_output = block.attn.prompt_output, None
        prompts = prompts + block.drop_path1(attended)
        self._live[path] = prompts + block.drop_path2(block.mlp(block.norm2(prompts)))

    def _end_layer(self, path, blocks, args, output):
        self._outputs[path] = self._live.pop(path, None)

    # ------------------------------------------------------------------ ViT hooks
    def _insert_vit_prompts(self, name, path, block, args):
        self._outputs[path] = None
        if not self.prompting:
            return None
        x, n = args[0], self._num_prefix
        prompts = self.prompts[name].expand(x.shape[0], -1, -1)
        self._inserted.add(path)
        return (torch.cat([x[:, :n], prompts, x[:, n:]], dim=1), *args[1:])

    def _remove_vit_prompts(self, path, block, args, output):
        if path not in self._inserted:
            return None
        self._inserted.discard(path)
        n, t = self._num_prefix, self.num_prompts
        self._outputs[path] = output[:, n:n + t]
        return torch.cat([output[:, :n], output[:, n + t:]], dim=1)

    # ------------------------------------------------------------------ use
    @property
    def prompting(self):
        return self._enabled and self.training and len(self.prompts) > 0

    def last_prompt_outputs(self, path):
        """(B, t, d) prompt outputs of the prompted stage / block at teacher module ``path`` in the latest
        teacher forward; None when that forward ran without prompts."""
        if path not in self.prompted_paths:
            raise KeyError(f"apt: {path!r} is not a prompted {self.architecture or 'teacher'} module; the "
                           f"prompted ones are {list(self.prompted_paths)}")
        return self._outputs.get(path)

    def extra_repr(self):
        return (f"target={self.target!r}, num_prompts={self.num_prompts}, init={self.init!r}, "
                f"architecture={self.architecture!r}")
