"""Datasets: the prompts a job generates from (built-in, PubMedQA, local files, the hub)."""
