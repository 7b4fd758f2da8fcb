"""From a sweep's raw table to an answer: statistics against the baseline, cost, roofline, plots
and findings. `analyze.analyze(sweep_dir)` is the entry; the report and `recommend` build on it."""
