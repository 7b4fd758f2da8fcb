"""Model sources: hub ids, local directories, GGUF files and random-init tiny models."""
