"""quantbench: which precision or quantization method to deploy, at which batch size, and at what cost."""

__version__ = "0.1.0"
