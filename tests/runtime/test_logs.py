"""The repeated-warning filter reaches the module loggers the noisy packages actually log on."""

from __future__ import annotations

import logging
import warnings

import pytest

from quantbench.runtime import logs


@pytest.fixture
def fresh_filter(monkeypatch):
    monkeypatch.setattr(logs, "_filter", logs.RepeatedWarningFilter())
    monkeypatch.setattr(logs, "NOISY_LOGGERS", ("qbtestnoisy",))
    yield logs._filter
    for name in ("qbtestnoisy", "qbtestnoisy.autograd._functions", "qbtestnoisyneighbour"):
        logging.getLogger(name).filters.clear()


def test_a_child_logger_repeating_a_warning_is_shown_once_and_counted(fresh_filter, caplog):
    child = logging.getLogger("qbtestnoisy.autograd._functions")  # exists before, as after an import
    neighbour = logging.getLogger("qbtestnoisyneighbour")  # shares the prefix, not the package
    logs.quiet_repeated_warnings()
    logs.quiet_repeated_warnings()  # a second job in the same process adds nothing twice
    assert child.filters.count(fresh_filter) == 1
    assert fresh_filter not in neighbour.filters

    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            child.warning("inputs will be cast from %s to float16", "torch.float32")
        child.error("a real problem")
        child.error("a real problem")
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("inputs will be cast from torch.float32 to float16") == 1
    assert messages.count("a real problem") == 2  # errors always pass
    assert fresh_filter.report() == ["(the warning 'inputs will be cast from %s to float16' repeated 4 more times)"]
    assert fresh_filter.report() == []  # reported once


def test_torchs_notice_about_torchaos_enums_is_dropped_on_both_channels(caplog):
    """The notice torch gives when torchao is imported; a sweep's log without it is tested in
    tests/e2e/test_warm_worker_sweeps.py."""
    notice = "%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type."
    logs.quiet_third_party_chatter()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torch.utils._pytree").warning(notice, "<enum 'KernelPreference'>")
        logging.getLogger("torch.utils._pytree").warning("another warning")
    assert [record.getMessage() for record in caplog.records] == ["another warning"]
    with warnings.catch_warnings(record=True) as caught:
        logs.quiet_third_party_chatter()  # inside pytest's own filters, as before a job's imports
        warnings.warn(notice % "<enum 'ScaleCalculationMode'>", UserWarning, stacklevel=1)
        warnings.warn("another warning", UserWarning, stacklevel=1)
    assert [str(warning.message) for warning in caught] == ["another warning"]
