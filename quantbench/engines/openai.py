"""An OpenAI-compatible endpoint that is already running (engine=openai): TGI, SGLang, llama.cpp's
llama-server, vLLM started by hand, a remote deployment. quantbench starts nothing; it sends its
load to `engine.url` with the API key read from the environment variable `engine.api_key_env`
names. The key lives only in the client's request headers: never in a config, a result or a log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and how they are addressed."""

    base_url: str  # the root under which /v1/... lives
    model: str | None  # None: ask the server (GET /v1/models)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold the API key: never printed
    extra_body: dict[str, Any] = field(default_factory=dict)  # engine.extra_body: offered with every request


def base_url(url: str) -> str:
    """The root of an OpenAI API: `http://host:8000` and `http://host:8000/v1` name the same one."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIEndpoint:
    name = "openai"
    description = "an OpenAI-compatible endpoint already running at engine.url (quantbench starts nothing)"
    offline = False
    starts_server = False

    def endpoint(self, engine: DictConfig) -> Endpoint:
        from quantbench.engines.kv_cache_dtype import endpoint_reason

        reason = endpoint_reason(engine)
        if reason is not None:
            raise JobSkipped(reason)
        url = engine.get("url")
        if not url:
            raise JobSkipped(
                "engine=openai needs engine.url, the endpoint to load (e.g. engine.url=http://127.0.0.1:8000)"
            )
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise JobSkipped(f"engine.url '{url}' is not an http(s) URL; give e.g. http://127.0.0.1:8000")
        headers: dict[str, str] = {}
        variable = engine.get("api_key_env")
        if variable:
            key = os.environ.get(str(variable))
            if not key:
                raise JobSkipped(
                    f"engine.api_key_env names {variable}, which is not set in the environment; export it first"
                )
            headers["Authorization"] = f"Bearer {key}"
        extra = engine.get("extra_body") or {}
        from omegaconf import OmegaConf

        extra = OmegaConf.to_container(extra, resolve=True) if OmegaConf.is_config(extra) else dict(extra)
        return Endpoint(base_url=base_url(str(url)), model=engine.get("model"), headers=headers, extra_body=extra)
