"""A server engine's launch request as the serve scenario builds it, for tests of what an engine's
command line holds (weights "/w", 127.0.0.1:8123, seed 0 unless a test gives its own)."""

from __future__ import annotations

from typing import Any

from quantbench.engines.base import ServerRequest
from quantbench.runtime.device import Device

CPU = Device("cpu", None, "test cpu")


def server_request(cfg, device: Device = CPU, **fields: Any) -> ServerRequest:
    settings = {"weights": "/w", "host": "127.0.0.1", "port": 8123, "seed": 0, **fields}
    return ServerRequest(precision=cfg.precision, engine=cfg.engine, device=device, **settings)
