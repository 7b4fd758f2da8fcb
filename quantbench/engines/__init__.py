"""Engines: who runs the model (transformers, vLLM, an OpenAI-compatible endpoint, ...).

Each is registered through the `quantbench.engines` entry-point group, built-ins like third parties.
"""
