"""What a tap says when the tensor it reads is not one kdzoo can describe (found by tools/tap_matrix.py)."""
import pytest
import torch
import torch.nn as nn

from kdzoo.taps import TapContract, TapRecorder


class WindowedNet(nn.Module):
    """A stage that hands out windows as a 5-D tensor (B, windows, h, w, C), as HiViT's early blocks do."""

    kdzoo_taps = TapContract(stages=['windows', 'conv'], classifier='fc')

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.windows = nn.Unflatten(1, (2, 4))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        self.windows(x.repeat(1, 3, 1, 1)[:, :8])   # read as a stage, not used further
        return self.fc(self.conv(x).mean((2, 3)))


class TwoLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 10), nn.Linear(3, 10)

    def forward(self, x):
        x = x.mean((2, 3))
        return self.a(x), self.b(x)


def test_a_stage_of_an_unknown_kind_names_the_stages_argument():
    with pytest.raises(TypeError, match=r"tap 'stage1' \(windows\) produced a 5-D tensor \(2, 2, 4, 8, 8\); kdzoo "
                                       r"reads maps.*tap a module whose output is one of these; for a stage, pass "
                                       r"stages=\[...\]"):
        TapRecorder(WindowedNet(), ['stage1']).probe((3, 8, 8))
    assert TapRecorder(WindowedNet(), ['stage2']).probe((3, 8, 8))['stage2'].shape == (8, 4, 4)


def test_a_model_that_returns_several_outputs_is_not_told_to_select_a_branch_of_its_output():
    with pytest.raises(TypeError, match=r"tap 'logits': the model's forward returns 2 outputs: \[0\] \(2, 10\), "
                                       r"\[1\] \(2, 10\); kdzoo reads its logits as one tensor. Wrap the "
                                       r"model") as error:
        TapRecorder(TwoLogits(), ['logits']).probe((3, 8, 8))
    assert 'model output[' not in str(error.value)


class WithShape(nn.Module):
    """Returns its feature with the feature's grid, as mmpretrain's Swin stages return ``(x, hw_shape)``."""

    def __init__(self, second=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.second = second

    def forward(self, x):
        x = self.conv(x)
        tokens = x.flatten(2).transpose(1, 2)
        return tokens, (self.second(tokens) if self.second else tuple(x.shape[2:]))


def test_a_tensor_returned_with_its_shape_is_the_feature_and_two_tensors_stay_branches():
    model = nn.Sequential(WithShape())
    spec = TapRecorder(model, ['0']).probe((3, 8, 8))['0']
    assert (spec.kind, spec.shape, spec.grid) == ('tokens', (16, 8), (4, 4))
    with pytest.raises(TypeError, match=r"tap '0' \(0\) returns 2 branches: \[0\] \(2, 16, 8\), \[1\] \(2, 16, 8\)"):
        TapRecorder(nn.Sequential(WithShape(nn.Identity())), ['0']).probe((3, 8, 8))
