"""Backends: how a model is loaded at a precision (dtype, bitsandbytes, GPTQ, ...)."""
