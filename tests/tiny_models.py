"""Small models and helpers shared by the tests (a plain user module addressed by module path)."""
import numpy as np
import torch
import torch.nn as nn


class TinyConvNet(nn.Module):
    """A user's own CNN: no timm, no declared stages; tests reach its layers by module path."""

    def __init__(self, in_chans=1, num_classes=10, width=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def batch_of(data_samples_labels, num_classes=10):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(int(y)) for y in data_samples_labels]


def fill_known(module):
    """Every parameter ← 0.3·sin(0.7·i + offset); returns {name: numpy copy}."""
    values = {}
    for offset, (name, param) in enumerate(module.named_parameters()):
        pattern = 0.3 * np.sin(0.7 * np.arange(param.numel()) + offset).reshape(param.shape)
        param.data.copy_(torch.from_numpy(pattern))
        values[name] = pattern
    return values


# Tiny model configs shared by the distiller tests: a 16-pixel, 1-channel ViT and ResNet-10-T (milliseconds a
# step), and a 32-pixel 3-channel pair for the stage-feature methods (timm's own ViT / DeiT / ResNet-18).
TINY_VIT = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=16, patch_size=4, in_chans=1,
                num_classes=10, embed_dim=32, depth=4, num_heads=2)
TINY_CNN = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10, channels=(8, 16, 16, 16),
                stem_width=8)
PREPROCESSOR = dict(type='mmpretrain.ClsDataPreprocessor', num_classes=10)
VIT_TEACHER_32 = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4, depth=4,
                      num_classes=10)
DEIT_STUDENT_32 = dict(type='TimmClassifier', model_name='deit_tiny_patch16_224', img_size=32, patch_size=4,
                       depth=4, num_classes=10)
# zero_init_last=False: timm zeroes each block's last BN gamma, which would leave the block's first convs
# without gradient in a one-step routing test.
RESNET18 = dict(type='TimmClassifier', model_name='resnet18', num_classes=10, zero_init_last=False)


def assert_gradient_routing(model, losses, unused_student_params=(), frozen_student_params=(), connectors=None):
    """The one gradient-routing check: backward through ``losses`` (the dict ``model.loss`` returned, before any
    backward), then

    * every student parameter gets a non-zero gradient, except those whose names start with
      ``unused_student_params`` (no gradient expected, e.g. a classifier behind a pre-logit tap) or
      ``frozen_student_params`` (frozen: no gradient and ``requires_grad`` off);
    * every trainable parameter of the distillers and adapters (connectors, prompts, tokens) gets a non-zero
      gradient; ``connectors=True`` / ``False`` also asserts that there are some / none;
    * the teachers get no gradient and an SGD step leaves them bit-identical, while it moves the student.
    """
    teacher_before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    sum(losses.values()).backward()

    for name, param in model.student.named_parameters():
        if name.startswith(tuple(frozen_student_params)):
            assert not param.requires_grad and param.grad is None, f"frozen student parameter {name} has a grad"
        elif name.startswith(tuple(unused_student_params)):
            assert param.grad is None, f"student parameter {name} was expected outside the graph"
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient: student {name}"
    extra = [(n, p) for part in (model.distillers, model.adapters) for n, p in part.named_parameters()
             if p.requires_grad]
    if connectors is not None:
        assert bool(extra) == connectors, [n for n, _ in extra]
    for name, param in extra:
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient: {name}"
    for name, param in model.teachers.named_parameters():
        assert param.grad is None and not param.requires_grad, f"teacher parameter {name} is trainable"

    student_before = [p.detach().clone() for p in model.student.parameters()]
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    teacher_after = model.teachers.state_dict()
    assert all(torch.equal(teacher_before[k], teacher_after[k]) for k in teacher_before), 'a teacher moved'
    assert any(not torch.equal(a, b) for a, b in zip(student_before, model.student.parameters())), \
        'the student did not move'


def check_gradient_routing(student_cfg, teacher_cfg, distiller_cfg, loss_names, unused_student_params=(),
                           input_size=(3, 32, 32), batch_size=4, connectors=True):
    """Builds a DistillModel with the task loss off, so every student gradient comes through the distiller,
    and runs :func:`assert_gradient_routing` on one batch."""
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    model = DistillModel(student=student_cfg, teachers=dict(t=teacher_cfg), distillers=[distiller_cfg],
                         input_size=input_size, task_loss_weight=0,
                         data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor'))
    model.train()
    samples = [DataSample().set_gt_label(k % 10) for k in range(batch_size)]
    losses = model.loss(torch.randn(batch_size, *input_size), samples)
    assert sorted(losses) == sorted(loss_names)
    assert_gradient_routing(model, losses, unused_student_params, connectors=connectors)
    return model
