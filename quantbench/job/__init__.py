"""One job's life: the child-process entry of an isolated job, and `run_job` (resolve, measure through
the scenario, write `result.json`; never raise).
"""
