"""shufflenet-edge: ShuffleNet V1/V2 from PyTorch to phones and ARM boards, with proof at every step."""

__version__ = "0.1.0"
