"""The Hydra config tree, inside the package so that any install carries it; mirrors the code."""
