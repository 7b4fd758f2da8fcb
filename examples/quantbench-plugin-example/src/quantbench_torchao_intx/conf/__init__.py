"""Config options this plugin adds to quantbench (found through the `quantbench.configs` entry point)."""
