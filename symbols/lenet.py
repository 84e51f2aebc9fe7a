"""LeNet as MXNet's `symbols/lenet.py`: conv 20 and 50 (5x5, tanh, 2x2 max-pool), fc 500 (tanh), fc classes.

Layer names follow MXNet's automatic names (`convolution0`, `fullyconnected1`, ...)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.convolution0 = nn.Conv2d(in_channels, 20, 5)
        self.convolution1 = nn.Conv2d(20, 50, 5)
        self.fullyconnected0 = nn.Linear(50 * 4 * 4, 500)
        self.fullyconnected1 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh is monotonic, so pooling first gives MXNet's tanh-then-pool result exactly, on 4x fewer values
        x = torch.tanh(F.max_pool2d(self.convolution0(x), 2, 2))
        x = torch.tanh(F.max_pool2d(self.convolution1(x), 2, 2))
        x = torch.tanh(self.fullyconnected0(x.flatten(1)))
        return self.fullyconnected1(x)


def get_symbol(num_classes: int = 10, **kwargs) -> nn.Module:
    return LeNet(num_classes)
