"""`served_fidelity.parquet`: one row per token scored through the server, kept raw.

Per row: the run (`phase`: no_load or under_load), the window and the token's offset in it, the
reference's and the server's most probable next token, the served KL divergence of that token
(quantbench/quality/served.py), how many tokens the server returned and their mass, and the span of
the request that scored it (seconds from the run's start; a request scores a whole window with vLLM
and completions-echo, one token with llama-server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from quantbench.loadgen.fidelity_probe import ProbeRun

SCHEMA = {
    "phase": "Utf8",
    "window": "Int64",
    "position": "Int64",
    "reference_top1": "Int64",
    "served_top1": "Int64",
    "kld": "Float64",
    "returned_k": "Int64",
    "returned_mass": "Float64",
    "sent_s": "Float64",
    "finished_s": "Float64",
}


def fidelity_frame(runs: Sequence[tuple[str, ProbeRun]], windows: Sequence[Any]):
    """The rows of every run (phase, ProbeRun) over the job's fidelity windows (task + reference rows)."""
    import polars as pl

    from quantbench.quality.served import ServedTopK, served_kl_divergence

    rows: list[dict[str, Any]] = []
    for phase, run in runs:
        for window, part in zip(windows, run.scored):
            if not part.top_k:
                continue
            served = ServedTopK.from_rows(part.top_k)
            reference = window.reference.rows(0, served.n_tokens)
            kld = served_kl_divergence(reference, served)
            top1, mass = served.top1(), served.returned_mass()
            for n, position in enumerate(window.task.positions[: served.n_tokens]):
                sent, finished = part.spans[n] if len(part.spans) == served.n_tokens else part.spans[0]
                rows.append(
                    {
                        "phase": phase,
                        "window": window.task.window,
                        "position": position,
                        "reference_top1": int(reference.top_indices[n, 0]),
                        "served_top1": int(top1[n]),
                        "kld": float(kld[n]),
                        "returned_k": len(part.top_k[n]),
                        "returned_mass": float(mass[n]),
                        "sent_s": sent - run.started_at,
                        "finished_s": finished - run.started_at,
                    }
                )
    return pl.DataFrame(rows, schema={name: getattr(pl, kind) for name, kind in SCHEMA.items()})
