"""Small models and helpers shared by the tests (a plain user module addressed by module path)."""
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
