"""The chat against reading the fake LLM directly: the first token, the latency per token, long replies through
either backend, many streams at once, and a read tool round."""

import asyncio
import json
import os
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

from .measuring import (Row, Scratch, cpu_seconds, millis, peak_rss, per_second, percentile, ratio_row, server,
                        wait_for_200, ws_url)
from .plan import Plan

TOKEN_PACE = 0.01  # seconds between tokens where the pace matters: 100 tokens/s, a fast local model
MODEL = "llama3.2"
STREAM_PACE = 0.001  # seconds between tokens of the concurrent streams: 1,000 tokens/s, a hosted or GPU server
BACKENDS = {  # the chat's LLM_BACKEND -> the environment that points it at the stamped fake (base URL appended)
    "ollama": lambda url: {"LLM_BACKEND": "ollama", "OLLAMA_HOST": url},
    "openai": lambda url: {"LLM_BACKEND": "openai", "OPENAI_BASE_URL": f"{url}/v1", "OPENAI_MODEL": f"{MODEL}:latest"},
}

STAMPED_LLM = '''\
"""The fork's fake Ollama, replying to a message ending in "COUNT PACE" with COUNT tokens sent PACE seconds apart.
Each token is the time.monotonic() it was sent at (a clock every process shares), so a reader can tell how long it
took to arrive. A message starting with TOOL, offered tools, is first answered with a call of list_todos."""
import asyncio
import os
import sys
import time

import uvicorn

sys.path.insert(0, "tests")
from fake_ollama import FakeLLM


class StampedLLM(FakeLLM):
    def reply(self, messages):
        count, pace = next(m["content"] for m in reversed(messages) if m["role"] == "user").split()[-2:]
        return [float(pace)] * int(count)

    def answer(self, body):
        last = body["messages"][-1]
        if body.get("tools") and last["role"] == "user" and last["content"].startswith("TOOL"):
            self.calls = [[("list_todos", {})]]
        return super().answer(body)

    async def paced(self, paces, chunk, error, end):
        for pace in paces:
            if isinstance(pace, dict):  # a tool call
                yield chunk(pace)
                continue
            await asyncio.sleep(pace)
            yield chunk(f"{time.monotonic():.6f} ")
        yield end()


uvicorn.run(StampedLLM().app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''
STAMP = re.compile(r"(\d+\.\d{6})(?!\d)")  # rendered as Markdown, the last loses its space
COPY_SOURCE = re.compile(r'data-markdown="[^"]*"')  # a finished reply's Markdown, kept for its Copy button


@dataclass
class Reading:
    "One reply as its reader saw it."
    first_token: float  # seconds from asking to the first token
    latencies: list[float]  # per token: seconds from the LLM sending it to the reader having it
    total: float  # seconds from asking to the end of the reply


async def read_direct(client: httpx.AsyncClient, count: int, pace: float, backend: str = "ollama") -> Reading:
    "Asks the fake LLM itself, the way the chat does, and reads the stream: Ollama's NDJSON or OpenAI's events."
    path, model = ("/api/chat", MODEL) if backend == "ollama" else ("/v1/chat/completions", f"{MODEL}:latest")
    body = {"model": model, "messages": [{"role": "user", "content": f"{count} {pace}"}], "stream": True}
    asked, first, latencies = time.monotonic(), None, []
    async with client.stream("POST", path, json=body) as response:
        async for line in response.aiter_lines():
            if backend == "openai":
                if not line.startswith("data: {"): continue
                content = json.loads(line[6:])["choices"][0]["delta"]["content"]
            else: content = json.loads(line)["message"]["content"]
            if not content: continue  # the end
            now = time.monotonic()
            first = first or now
            latencies.append(now - float(content))
    if len(latencies) != count: raise RuntimeError(f"the direct reader got {len(latencies)} tokens of {count}")
    return Reading(first - asked, latencies, time.monotonic() - asked)


async def read_chat(ws, count: int, pace: float, prefix: str = "") -> Reading:
    """Asks through the chat's WebSocket, as the page does, and reads the fragments until the reply is done. A frame
    that shows the whole reply so far (its Markdown rendered, or the finished reply) brings the tokens past those
    already seen; the others bring text to append. prefix starts the message (TOOL: a read tool round first)."""
    asked, first, latencies = time.monotonic(), None, []
    await ws.send(json.dumps({"msg": f"{prefix}{count} {pace}"}))
    while True:
        frame = await ws.recv()
        done = "assistant done" in frame
        now = time.monotonic()
        stamps = STAMP.findall(COPY_SOURCE.sub("", frame))
        if done or "innerHTML:#" in frame: stamps = stamps[len(latencies):]
        first = first or (now if stamps else None)
        latencies += [now - float(stamp) for stamp in stamps]
        if done: break
    if "msg error" in frame or len(latencies) != count:
        raise RuntimeError(f"the chat reader got {len(latencies)} tokens of {count}: {frame[:300]}")
    return Reading(first - asked, latencies, time.monotonic() - asked)


async def chat_pairs(plan: Plan, llm_url: str, app_url: str, process, backend: str = "ollama") -> list[Row]:
    """Through the chat against reading the LLM directly; the reply's tokens per second through either backend,
    with the CPU the chat server spent per token (it shares the machine with the LLM), the first token and the
    latency per token through Ollama's."""
    async with httpx.AsyncClient(base_url=llm_url, timeout=60) as llm, \
               httpx.AsyncClient(base_url=app_url, timeout=60) as app, \
               websockets.connect(ws_url(app_url), max_size=None) as ws:

        async def pairs_of(count: int, pace: float) -> list[tuple[Reading, Reading]]:
            "Direct then through the chat; the chat's history is cleared first, so every request is the same size."
            results = []
            for run_number in range(plan.warmups + plan.runs):
                direct = await read_direct(llm, count, pace, backend)
                (await app.post("/chat/clear")).raise_for_status()
                chat = await read_chat(ws, count, pace)
                if run_number >= plan.warmups: results.append((direct, chat))
            return results

        def difference_row(figure, results, value, target, limit) -> Row:
            base, subject = [value(d) for d, _ in results], [value(c) for _, c in results]
            added = statistics.median(s - b for b, s in zip(base, subject))
            return Row(figure, "reading the fake Ollama directly", millis(statistics.median(base)),
                       millis(statistics.median(subject)), f"{added * 1000:+.2f} ms", target,
                       None if limit is None else added <= limit)

        rows = []
        if backend == "ollama":
            print("chat: time to first token ...", file=sys.stderr)
            rows.append(difference_row("chat: time to first token seen by a WebSocket client", await pairs_of(5, 0),
                                       lambda r: r.first_token, "≤ +1.5 ms", 0.0015))
            print("chat: latency per token ...", file=sys.stderr)
            paced = await pairs_of(plan.latency_tokens, TOKEN_PACE)
            for n, target, limit in ((50, "≤ +1 ms", 0.001), (99, "—", None)):
                rows.append(difference_row(f"chat: added latency per token, p{n} ({plan.latency_tokens} tokens, "
                                           f"{1 / TOKEN_PACE:.0f} per second)", paced,
                                           lambda r: percentile(r.latencies, n), target, limit))
        api = "Ollama's API" if backend == "ollama" else "the OpenAI-compatible API"
        print(f"chat: {plan.long_reply}-token reply through {api} ...", file=sys.stderr)
        cpu_before = cpu_seconds(process.pid)
        results = await pairs_of(plan.long_reply, 0)
        cpu_per_token = (cpu_seconds(process.pid) - cpu_before) / (len(results) + plan.warmups) / plan.long_reply
        base = [plan.long_reply / d.total for d, _ in results]
        subject = [plan.long_reply / c.total for _, c in results]
        row = ratio_row(f"chat: {plan.long_reply:,}-token reply, tokens per second (as fast as the LLM sends), {api}",
                        "reading the fake LLM directly", base, subject, per_second, "≥ 0.9x", 0.9,
                        higher_is_better=True)
        row.subject_value += f"; server CPU {cpu_per_token * 1e6:.0f} µs per token"
        return rows + [row]


async def tool_round_row(plan: Plan, app_url: str) -> Row:
    """A reply after a read tool round (the model calls list_todos, then answers) against the same reply asked
    without a tool call, both through the chat, whose history is cleared before each."""
    async with httpx.AsyncClient(base_url=app_url, timeout=60) as app, \
               websockets.connect(ws_url(app_url), max_size=None) as ws:
        async def total(prefix: str) -> float:
            (await app.post("/chat/clear")).raise_for_status()
            return (await read_chat(ws, 5, 0, prefix)).total
        results = [(await total(""), await total("TOOL ")) for _ in range(plan.warmups + plan.runs)][plan.warmups:]
    base, subject = [b for b, _ in results], [s for _, s in results]
    added = statistics.median(s - b for b, s in results)
    return Row("chat: added time of a read tool round (list_todos), 5-token reply", "the same reply without one",
               millis(statistics.median(base)), millis(statistics.median(subject)), f"{added * 1000:+.1f} ms",
               "—", None)


async def concurrent_streams(plan: Plan, app_url: str, process) -> Row:
    """plan.streams tabs ask at once, each in a profile of its own (a profile has one generation at a time, so the
    streams of one profile queue by design); each reply is paced like a hosted or GPU server."""
    pace = STREAM_PACE
    async with httpx.AsyncClient(base_url=app_url, timeout=60) as app:
        tabs = []
        for n in range(plan.streams):
            added = (await app.post("/profiles", data={"name": f"Stream {n}"})).raise_for_status()
            profile = max(map(int, re.findall(r'id="profile-(\d+)"', added.text)))
            (await app.post(f"/profiles/{profile}/switch")).raise_for_status()
            tabs.append(await websockets.connect(ws_url(app_url), max_size=None))  # the tab takes the active profile
    idle_rss = peak_rss(process.pid)
    started = time.monotonic()
    try:
        results = await asyncio.gather(*[read_chat(ws, plan.stream_tokens, pace) for ws in tabs],
                                       return_exceptions=True)
    finally:
        for ws in tabs: await ws.close()
    took = time.monotonic() - started
    readings = [r for r in results if isinstance(r, Reading)]
    errors = [r for r in results if not isinstance(r, Reading)]
    if errors: print(f"{len(errors)} streams failed, the first with: {errors[0]!r}", file=sys.stderr)
    p99 = millis(percentile([t for r in readings for t in r.latencies], 99)) if readings else "—"
    outcome = (f"{len(readings)}/{plan.streams} complete, {len(errors)} errors, in {took:.1f} s; p99 token latency "
               f"{p99}; server peak RSS {peak_rss(process.pid) / 2 ** 20:.0f} MB ({idle_rss / 2 ** 20:.0f} MB before)")
    return Row(f"{plan.streams} concurrent chat streams ({plan.stream_tokens} tokens each, {1 / pace:.0f} per second)",
               "—", "—", outcome, "—", "0 errors, all complete; peak RSS reported",
               not errors and len(readings) == plan.streams)


@contextmanager
def stamped_llm(fork: Path, fresh: Scratch):
    "STAMPED_LLM served with the fork's python until the block ends; yields its base URL."
    script = fresh("llm") / "stamped_llm.py"
    script.parent.mkdir()
    script.write_text(STAMPED_LLM)
    with server([fork / ".venv/bin/python", script], fork, dict(os.environ)) as (llm, llm_url):
        wait_for_200(llm_url + "/api/version", llm)
        yield llm_url


def chat_rows(plan: Plan, fork: Path, env: dict, llm_url: str) -> list[Row]:
    "The server run once with each LLM_BACKEND pointed at the stamped LLM; the streams and tool round with Ollama's."
    rows = []
    for backend, backend_env in BACKENDS.items():
        with server([fork / ".venv/bin/python", "server.py"], fork, env | backend_env(llm_url)) as (app, app_url):
            wait_for_200(app_url + "/", app)
            rows += asyncio.run(chat_pairs(plan, llm_url, app_url, app, backend))
            if backend == "ollama":
                print("concurrent chat streams ...", file=sys.stderr)
                rows.append(asyncio.run(concurrent_streams(plan, app_url, app)))
                print("chat: a read tool round ...", file=sys.stderr)
                rows.append(asyncio.run(tool_round_row(plan, app_url)))
    return rows
