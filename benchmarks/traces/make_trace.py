"""Writes benchmarks/traces/synthetic_trace.jsonl: a small synthesised trace for serve.trace (seeded).

Nothing is downloaded: the trace is drawn here, with the shapes production traces show.

- Bursty arrivals: sessions start by a two-state Markov-modulated Poisson process, calm periods
  (`--calm-rate` sessions/s) and bursts (`--burst-rate`), each lasting an exponential time
  (means `--calm-s`, `--burst-s`), so the inter-arrival times vary far more than Poisson's.
- Lengths: log-normal input and output token counts (a long right tail), clipped.
- Shared prefixes: a share of sessions (`--prefix-share`) use one of `--prefix-groups` system prompts,
  group g of 32·(g+1) tokens (prefix_group, prefix_tokens).
- Conversations: a share of sessions (`--conversation-share`) are conversations of 2 to
  `--max-turns` turns (conversation_id); a later turn arrives an exponential think time
  (mean `--think-s`) after the turn before it.

Every request fits SmolLM2-135M's context of 8,192 tokens, a conversation's last turn with its history.

    python benchmarks/traces/make_trace.py                      # the shipped trace (seed 0)
    python benchmarks/traces/make_trace.py --sessions 50 --output /tmp/t.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "synthetic_trace.jsonl"


def lognormal_lengths(rng: np.random.Generator, mean: float, stdev: float, low: int, high: int, count: int):
    """Integer lengths whose own mean and stdev are `mean` and `stdev` (before clipping to low..high)."""
    sigma2 = math.log1p((stdev / mean) ** 2)
    values = rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), count)
    return np.clip(np.rint(values), low, high).astype(int)


def session_starts(rng: np.random.Generator, args: argparse.Namespace) -> list[float]:
    """Start times of `args.sessions` sessions from a calm/burst Markov-modulated Poisson process."""
    starts: list[float] = []
    now, bursting = 0.0, False
    while len(starts) < args.sessions:
        rate = args.burst_rate if bursting else args.calm_rate
        period_end = now + rng.exponential(args.burst_s if bursting else args.calm_s)
        while len(starts) < args.sessions:
            now += rng.exponential(1.0 / rate)
            if now > period_end:
                now = period_end
                break
            starts.append(now)
        bursting = not bursting
    return starts


def make_trace(args: argparse.Namespace) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    requests = []
    for session, start in enumerate(session_starts(rng, args)):
        turns = int(rng.integers(2, args.max_turns + 1)) if rng.random() < args.conversation_share else 1
        inputs = lognormal_lengths(rng, 256, 200, 16, 1500, turns)
        outputs = lognormal_lengths(rng, 64, 48, 4, 256, turns)
        group = int(rng.integers(0, args.prefix_groups)) if rng.random() < args.prefix_share else None
        arrival = start
        for turn in range(turns):
            request = {
                "arrival_s": round(arrival, 4),
                "input_tokens": int(inputs[turn]),
                "output_tokens": int(outputs[turn]),
            }
            if group is not None:
                request |= {"prefix_group": group, "prefix_tokens": 32 * (group + 1)}
            if turns > 1:
                request["conversation_id"] = f"s{session}"
            requests.append(request)
            arrival += rng.exponential(args.think_s)
    return sorted(requests, key=lambda request: request["arrival_s"])  # stable: a session's turns stay in order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=240)
    parser.add_argument("--calm-rate", type=float, default=2.0, help="sessions per second in calm periods")
    parser.add_argument("--burst-rate", type=float, default=25.0, help="sessions per second in bursts")
    parser.add_argument("--calm-s", type=float, default=8.0, help="mean length of a calm period")
    parser.add_argument("--burst-s", type=float, default=1.5, help="mean length of a burst")
    parser.add_argument("--prefix-groups", type=int, default=4)
    parser.add_argument("--prefix-share", type=float, default=0.4)
    parser.add_argument("--conversation-share", type=float, default=0.25)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--think-s", type=float, default=4.0, help="mean time between a conversation's turns")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    requests = make_trace(args)
    args.output.write_text("".join(json.dumps(request) + "\n" for request in requests))
    gaps = np.diff([request["arrival_s"] for request in requests])
    print(
        f"wrote {args.output}: {len(requests)} requests over {requests[-1]['arrival_s']:.1f} s, "
        f"inter-arrival CV {gaps.std() / gaps.mean():.2f} (Poisson: 1), "
        f"{sum('conversation_id' in r for r in requests)} in conversations, "
        f"{sum('prefix_group' in r for r in requests)} with a shared prefix"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
