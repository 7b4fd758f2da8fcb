"""torchao's sub-byte weight-only quantization as a quantbench plugin: a worked example of a third-party backend."""
