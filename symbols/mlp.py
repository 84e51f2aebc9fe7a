"""Multi-layer perceptron 784-128-64-classes with ReLU, as MXNet's `symbols/mlp.py` (layers fc1..fc3)."""
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, num_classes: int = 10, in_features: int = 784):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def get_symbol(num_classes: int = 10, **kwargs) -> nn.Module:
    return MLP(num_classes)
