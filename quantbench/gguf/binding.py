"""llama-cpp-python, the binding through which quantbench runs llama.cpp: found, imported, described.

The binding builds llama.cpp from source when it is installed; one pinned version, so the
converter fetched from its source distribution writes files the installed library reads.
"""

from __future__ import annotations

import importlib.util
from typing import Any

PACKAGE = "llama-cpp-python"
MODULE = "llama_cpp"
PINNED_VERSION = "0.3.36"
INSTALL_HINT = (
    f"pip install '{PACKAGE}=={PINNED_VERSION}' sentencepiece "
    "(or pip install 'quantbench[gguf]'; it compiles llama.cpp, "
    "several minutes; docs/gguf.md gives the CMAKE_ARGS of a portable build)"
)


def unavailable_reason() -> str | None:
    """Why llama.cpp cannot run here (binding missing or broken), or None; imports it to find out."""
    if importlib.util.find_spec(MODULE) is None:
        return f"the llama.cpp engine requires the '{PACKAGE}' package, which is not installed ({INSTALL_HINT})"
    try:
        import_binding()
    except Exception as error:
        return (
            f"the '{PACKAGE}' package is installed but does not load ({type(error).__name__}: {error}); "
            f"reinstall it: {INSTALL_HINT}"
        )
    return None


# The logger llama-cpp-python passes llama.cpp's own log through; below ERROR it prints llama.cpp's
# load report (tensor by tensor, buffer sizes) on stderr, as `Llama(verbose=False)` would not.
BINDING_LOGGER = "llama-cpp-python"


def import_binding() -> Any:
    import logging

    import llama_cpp

    logging.getLogger(BINDING_LOGGER).setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()
    return llama_cpp


def binding_version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)


def build_info() -> dict[str, Any]:
    """What this llama.cpp build can do: recorded with every llama.cpp job."""
    llama_cpp = import_binding()
    system = llama_cpp.llama_print_system_info().decode(errors="replace")
    return {
        "llama_cpp_python_version": binding_version(),
        "llama_cpp_gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "llama_cpp_system_info": " ".join(system.split()),
    }
