"""The warm worker (quantbench/sweep/warm_worker.py): isolated jobs forked from one process that imported
torch once. The worker refuses to fork once CUDA is initialised, a source file changed since it
started makes it stale, and a worker that cannot start means fresh interpreters, with the reason
logged (crashing jobs and whole sweeps: tests/e2e/test_warm_worker_sweeps.py)."""

from __future__ import annotations

import os

from quantbench.sweep import fork_server, warm_worker


def test_the_worker_refuses_to_fork_once_cuda_is_initialised(monkeypatch):
    monkeypatch.setattr(fork_server, "WARM_IMPORTS", ("json",))  # the check, not the imports
    monkeypatch.setattr(fork_server, "_cuda_initialised", lambda: True)
    assert "CUDA was initialised" in fork_server.prepare()


def test_a_source_file_changed_since_the_worker_started_makes_it_stale(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    imported = {str(source): source.stat().st_mtime_ns}
    assert fork_server.stale_sources(imported) == []
    os.utime(source, ns=(0, 0))  # what an edit or a checkout does to its modification time
    assert fork_server.stale_sources(imported) == [str(source)]


def test_without_a_worker_jobs_start_fresh_interpreters_and_say_why(monkeypatch, caplog, tmp_path):
    def cannot_start(environment, wait=True):
        raise warm_worker.WorkerUnavailable("the warm worker could not prepare: ImportError: test")

    monkeypatch.setattr(warm_worker, "_worker", None)
    monkeypatch.setattr(warm_worker, "_unavailable", None)
    monkeypatch.setattr(warm_worker, "WarmWorker", cannot_start)
    with caplog.at_level("WARNING", logger="quantbench"):
        assert warm_worker.start_job(tmp_path, [], dict(os.environ)) is None
        assert warm_worker.start_job(tmp_path, [], dict(os.environ)) is None  # not retried every job
    assert [record.getMessage() for record in caplog.records] == [
        "no warm worker (the warm worker could not prepare: ImportError: test); "
        "each isolated job starts a fresh Python interpreter"
    ]
