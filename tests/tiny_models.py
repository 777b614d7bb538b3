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


def check_gradient_routing(student_cfg, teacher_cfg, distiller_cfg, loss_names, unused_student_params=()):
    """Only the distiller's loss (task loss off): student and connectors learn, the teacher never moves."""
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    model = DistillModel(student=student_cfg, teachers=dict(t=teacher_cfg), distillers=[distiller_cfg],
                         input_size=(3, 32, 32), task_loss_weight=0,
                         data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor'))
    model.train()
    teacher_before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    samples = [DataSample().set_gt_label(k) for k in (0, 1, 2, 3)]
    losses = model.loss(torch.randn(4, 3, 32, 32), samples)
    assert sorted(losses) == sorted(loss_names)
    sum(losses.values()).backward()

    for name, param in model.student.named_parameters():
        if name.startswith(unused_student_params):
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    connectors = list(model.distillers.named_parameters())
    assert connectors
    for name, param in connectors:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    for name, param in model.teachers.named_parameters():
        assert param.grad is None and not param.requires_grad, name

    student_before = [p.detach().clone() for p in model.student.parameters()]
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    teacher_after = model.teachers.state_dict()
    assert all(torch.equal(teacher_before[k], teacher_after[k]) for k in teacher_before)
    assert any(not torch.equal(a, b) for a, b in zip(student_before, model.student.parameters()))
    return model
