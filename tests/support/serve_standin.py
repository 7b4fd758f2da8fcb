"""A stand-in OpenAI-compatible streaming server for the serving tests (and any engine.command).

Accepts the command lines quantbench's engines build (`<exe> serve MODEL --host H --port P ...`,
unknown options ignored) and serves /health, /v1/models, /v1/chat/completions and /v1/completions,
streaming one chunk per token. `--standin-*` options (given through engine.args) misbehave on
purpose:

    --standin-delay-ms MS        between chunks (default 2)
    --standin-slots N            generate at most N requests at once; the others wait for a slot, in
                                 order (a server with a capacity: TTFT and E2E rise with the load)
    --standin-crash-after N      exit (code 3) when the N+1-th generation request arrives
    --standin-never-healthy      /health answers 503 forever
    --standin-fail-every K       every K-th generation request gets HTTP 500
    --standin-no-usage           no usage in the stream (the client counts tokens itself)
    --standin-usage WHEN         always (default; transformers serve before 5.25), on-request (only
                                 with stream_options.include_usage, as 5.25 and vLLM), never
    --standin-refuse FIELD       answer HTTP 422 to a request with this body field (repeatable),
                                 as transformers serve does for ignore_eos
    --standin-eos-after N        end with finish_reason stop after N tokens, unless the request
                                 holds the end of sequence back (ignore_eos, min_tokens, generation_config)
    --standin-api-key-env VAR    require `Authorization: Bearer $VAR`
    --standin-record FILE        write this process's argv (JSON) to FILE
    --standin-record-requests FILE   append each generation request's body to FILE, one JSON line each
    --standin-count-tokens       usage's prompt_tokens counted with the model's tokenizer (MODEL's directory),
                                 as a real server does: the chat template for chat requests, the text with its
                                 special tokens for completions (default: 7 for every request)
    --standin-kill-self          SIGKILL itself at start, as the kernel's out-of-memory killer would
    --standin-replay PREFIX      answer chat requests with a transcript recorded from a real server:
                                 PREFIX_chat_ignore_eos.txt for a request with ignore_eos,
                                 PREFIX_chat_stream_options.txt with stream_options, else
                                 PREFIX_chat_plain.txt (first line "HTTP <status>", then the body)
    --standin-metrics SOURCE     serve Prometheus text at /metrics (without it: 404, as transformers
                                 serve): `live`, vLLM's names counting this server's own requests
                                 (metrics_text), or a FILE recorded from a real server, served as is
    --standin-logprobs           load MODEL (a transformers directory: the job's weights) in float32
                                 and answer llama-server's native POST /completion (token-id prompt,
                                 n_probs, n_predict 1) with its real next-token log-probabilities,
                                 as llama-server's completion_probabilities (served fidelity); without
                                 it /completion is HTTP 404, as a server without the endpoint
    --standin-logit-noise STD    add seeded Gaussian noise of this std to those logits (a server whose
                                 outputs differ from the reference)

    python tests/support/serve_standin.py serve /some/model --host 127.0.0.1 --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("subcommand", nargs="?")
    parser.add_argument("model", nargs="?", default="standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--standin-delay-ms", type=float, default=2.0)
    parser.add_argument("--standin-slots", type=int, default=None)
    parser.add_argument("--standin-crash-after", type=int, default=None)
    parser.add_argument("--standin-never-healthy", action="store_true")
    parser.add_argument("--standin-fail-every", type=int, default=None)
    parser.add_argument("--standin-no-usage", action="store_true")
    parser.add_argument("--standin-usage", choices=("always", "on-request", "never"), default="always")
    parser.add_argument("--standin-refuse", action="append", default=[])
    parser.add_argument("--standin-eos-after", type=int, default=None)
    parser.add_argument("--standin-api-key-env", default=None)
    parser.add_argument("--standin-record", default=None)
    parser.add_argument("--standin-kill-self", action="store_true")
    parser.add_argument("--standin-replay", default=None)
    parser.add_argument("--standin-metrics", default=None)
    parser.add_argument("--standin-record-requests", default=None)
    parser.add_argument("--standin-count-tokens", action="store_true")
    parser.add_argument("--standin-logprobs", action="store_true")
    parser.add_argument("--standin-logit-noise", type=float, default=0.0)
    options, _unknown = parser.parse_known_args(argv)
    return options


# --standin-metrics live: what each generation request adds to the counters (its usage reports 7
# prompt tokens); a prompt seen before is a prefix-cache hit of all of them.
LIVE_PROMPT_TOKENS = 7
LIVE_KV_SLOTS = 8  # the KV-cache usage is the requests running over this


def metrics_text(live: dict) -> str:
    """vLLM's names and shapes (vllm/v1/metrics/loggers.py) with this server's live counts."""
    labels = '{engine="0",model_name="standin"}'
    lines = []
    for name, kind, value in (
        ("vllm:num_requests_running", "gauge", live["running"]),
        ("vllm:num_requests_waiting", "gauge", 0),
        ("vllm:kv_cache_usage_perc", "gauge", min(1.0, live["running"] / LIVE_KV_SLOTS)),
        ("vllm:num_preemptions_total", "counter", 0),
        ("vllm:prefix_cache_queries_total", "counter", live["queries"]),
        ("vllm:prefix_cache_hits_total", "counter", live["hits"]),
        ("vllm:prompt_tokens_total", "counter", live["prompt_tokens"]),
        ("vllm:generation_tokens_total", "counter", live["generation_tokens"]),
    ):
        lines += [f"# HELP {name} stand-in", f"# TYPE {name} {kind}", f"{name}{labels} {float(value)}"]
    return "\n".join(lines) + "\n"


def load_next_token_scorer(options: argparse.Namespace):
    """`top_k(prompt_ids, k) -> [(id, log-probability)]` of the real model in MODEL, noise added if asked."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)  # the job's client and its reference share the machine
    model = AutoModelForCausalLM.from_pretrained(options.model, dtype=torch.float32).eval()

    def top_k(prompt_ids: list[int], k: int) -> list[tuple[int, float]]:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt_ids]), use_cache=False).logits[0, -1].float()
        if options.standin_logit_noise:
            generator = torch.Generator().manual_seed(len(prompt_ids))
            logits = logits + options.standin_logit_noise * torch.randn(logits.shape, generator=generator)
        values, indices = torch.log_softmax(logits, dim=-1).topk(min(k, logits.numel()))
        return list(zip(indices.tolist(), values.tolist()))

    return top_k


def llama_server_completion(top: list[tuple[int, float]], prompt_ids: list[int], model_name: str) -> dict:
    """llama-server's non-streamed /completion answer (tools/server/server-task.cpp, to_json_non_oaicompat)."""

    def entry(token: int, logprob: float) -> dict:
        text = f"<{token}>"
        return {"id": token, "token": text, "bytes": list(text.encode()), "logprob": logprob}

    first = entry(*top[0])
    return {
        "index": 0,
        "content": first["token"],
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": model_name,
        "tokens_predicted": 1,
        "tokens_evaluated": len(prompt_ids),
        "stop_type": "limit",
        "completion_probabilities": [{**first, "top_logprobs": [entry(*pair) for pair in top]}],
    }


def make_app(options: argparse.Namespace):
    state = {"requests": 0}
    live = {"running": 0, "queries": 0, "hits": 0, "prompt_tokens": 0, "generation_tokens": 0, "seen": set()}
    slots = asyncio.Semaphore(options.standin_slots) if options.standin_slots else contextlib.nullcontext()
    next_token_top_k = load_next_token_scorer(options) if options.standin_logprobs else None
    model_name = options.served_model_name or options.model
    count_prompt_tokens = prompt_token_counter(options.model) if options.standin_count_tokens else None
    api_key = os.environ.get(options.standin_api_key_env) if options.standin_api_key_env else None

    async def respond(send, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})

    async def read_body(receive) -> dict:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return json.loads(b"".join(chunks) or b"{}")

    async def replay(send, body: dict) -> None:
        kind = "ignore_eos" if "ignore_eos" in body else "stream_options" if "stream_options" in body else "plain"
        with open(f"{options.standin_replay}_chat_{kind}.txt") as handle:
            status_line, _, recorded = handle.read().partition("\n")
        status = int(status_line.split()[1])
        kind_of_body = b"text/event-stream" if status == 200 else b"application/json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind_of_body)]})
        await send({"type": "http.response.body", "body": recorded.encode()})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        headers = dict(scope["headers"])
        if (
            api_key is not None
            and path.startswith("/v1")
            and headers.get(b"authorization") != f"Bearer {api_key}".encode()
        ):
            return await respond(send, 401, {"error": {"message": "invalid API key"}})
        if path == "/health":
            return await respond(send, 503 if options.standin_never_healthy else 200, {"status": "ok"})
        if path == "/metrics" and options.standin_metrics:
            if options.standin_metrics == "live":
                text = metrics_text(live)
            else:
                with open(options.standin_metrics) as handle:
                    text = handle.read()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            return await send({"type": "http.response.body", "body": text.encode()})
        if path == "/v1/models":
            return await respond(send, 200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
        if next_token_top_k is not None and method == "POST" and path == "/completion":
            body = await read_body(receive)
            prompt = body.get("prompt")
            if not isinstance(prompt, list) or not prompt or body.get("post_sampling_probs"):
                message = "standin: /completion imitates a token-id prompt with post_sampling_probs false only"
                return await respond(send, 400, {"error": {"code": 400, "message": message}})
            top = await asyncio.to_thread(next_token_top_k, prompt, int(body.get("n_probs") or 1))
            return await respond(send, 200, llama_server_completion(top, prompt, model_name))
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            return await respond(send, 404, {"error": {"message": f"no route {method} {path}"}})
        body = await read_body(receive)
        state["requests"] += 1
        if options.standin_record_requests:
            with open(options.standin_record_requests, "a") as handle:
                handle.write(json.dumps({"path": path, "body": body}) + "\n")
        if options.standin_crash_after is not None and state["requests"] > options.standin_crash_after:
            print(f"standin: crashing on request {state['requests']} (--standin-crash-after)", flush=True)
            os._exit(3)
        if options.standin_fail_every and state["requests"] % options.standin_fail_every == 0:
            return await respond(
                send, 500, {"error": {"message": f"standin: request {state['requests']} fails on purpose"}}
            )
        if options.standin_replay:
            return await replay(send, body)
        refused = [name for name in options.standin_refuse if name in body]
        if refused:  # the shape of FastAPI's validation error
            detail = [
                {"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted"}
                for name in refused
            ]
            return await respond(send, 422, {"detail": detail})
        chat = path.endswith("chat/completions")
        max_tokens = int(body.get("max_tokens") or 16)
        eos_held = body.get("ignore_eos") or body.get("min_tokens") or "generation_config" in body
        generated = (
            max_tokens if options.standin_eos_after is None or eos_held else min(max_tokens, options.standin_eos_after)
        )
        usage = options.standin_usage
        if options.standin_no_usage or (
            usage == "on-request" and not (body.get("stream_options") or {}).get("include_usage")
        ):
            usage = "never"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        prompt = json.dumps(body.get("messages") or body.get("prompt"))
        live["queries"] += LIVE_PROMPT_TOKENS
        live["prompt_tokens"] += LIVE_PROMPT_TOKENS
        live["hits"] += LIVE_PROMPT_TOKENS if prompt in live["seen"] else 0
        live["seen"].add(prompt)
        live["running"] += 1
        try:
            await stream(send, body, chat, generated, usage)
        finally:
            live["running"] -= 1

    async def stream(send, body: dict, chat: bool, generated: int, usage: str) -> None:
        max_tokens = int(body.get("max_tokens") or 16)

        async def event(payload: dict) -> None:
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(payload)}\n\n".encode(), "more_body": True}
            )

        base = {
            "id": f"standin-{state['requests']}",
            "model": model_name,
            "object": "chat.completion.chunk" if chat else "text_completion",
        }
        if chat:
            await event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        async with slots:
            for index in range(generated):
                await asyncio.sleep(options.standin_delay_ms / 1000)
                text = f" tok{index}"
                choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
                await event({**base, "choices": [choice]})
                live["generation_tokens"] += 1
        reason = "length" if generated == max_tokens else "stop"
        final = {
            **base,
            "choices": [
                {"index": 0, "delta": {}, "finish_reason": reason}
                if chat
                else {"index": 0, "text": "", "finish_reason": reason}
            ],
        }
        if usage != "never":
            prompt_tokens = 7 if count_prompt_tokens is None else count_prompt_tokens(body, chat)
            final["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": generated,
                "total_tokens": prompt_tokens + generated,
            }
        await event(final)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    return app


def prompt_token_counter(model_dir: str):
    """Counts a request's prompt tokens as transformers serve does: the text with the tokenizer's
    special tokens for a completion (read by `tokenizers` from the model's tokenizer.json: no
    transformers import, which costs the stand-in ~10 s of start-up on 2 cores), the chat template
    rendered and tokenized for messages (transformers' own tokenizer, loaded at the first chat request)."""
    from pathlib import Path

    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    loaded = {}

    def count(body: dict, chat: bool) -> int:
        if not chat:
            return len(fast.encode(body["prompt"]).ids)
        if "chat" not in loaded:
            from transformers import AutoTokenizer

            loaded["chat"] = AutoTokenizer.from_pretrained(model_dir)
        tokenizer = loaded["chat"]
        rendered = tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    return count


@contextlib.contextmanager
def serving_in_thread(argv: list[str]):
    """The stand-in served by a thread of this process, its base URL yielded: for tests that would
    otherwise pay a second interpreter's imports (torch and transformers, for --standin-logprobs)."""
    import threading
    import time

    import uvicorn

    options = parse(argv)
    config = uvicorn.Config(make_app(options), host=options.host, port=options.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="standin", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the stand-in did not start on {options.host}:{options.port}")
        time.sleep(0.01)
    try:
        yield f"http://{options.host}:{options.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    options = parse(sys.argv[1:] if argv is None else argv)
    print(f"standin pid {os.getpid()}", flush=True)
    if options.standin_record:
        with open(options.standin_record, "w") as handle:
            json.dump(sys.argv, handle)
    if options.standin_kill_self:
        os.kill(os.getpid(), signal.SIGKILL)
    uvicorn.run(make_app(options), host=options.host, port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
