"""Plugins for the registry and error-path tests, registered through fake entry points."""

from __future__ import annotations

from quantbench.backends.base import missing_package_reason
from quantbench.backends.dense import Float32Backend

raise_on_import = False


class NeedsMissingPackage(Float32Backend):
    name = "needs-missing"
    description = "a backend whose dependency is not installed"

    def unavailable_reason(self, device):
        return missing_package_reason("quantbench_not_a_real_package")


class RaisesWhileLoading(Float32Backend):
    name = "raises-while-loading"
    description = "a backend that raises inside load()"

    def load(self, request):
        raise RuntimeError("this plugin is broken on purpose")
