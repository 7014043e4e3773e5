"""A fake LLM server speaking Ollama's API and the OpenAI-compatible one, for the tests and for trying the chat.

Ollama: GET /api/version, GET /api/tags, POST /api/show (the model's capabilities), POST /api/chat (streamed
NDJSON, or one JSON object with stream false; 404 {"error": ...} for a model it does not have). OpenAI-compatible:
GET /v1/models, POST /v1/chat/completions (streamed as server-sent events; 404 for an unknown model, 401 without the
API key when one is set).

Tests script the next replies through the attributes of FakeLLM: the tokens, a delay before each, an {"error"}
chunk or a stall after some tokens, and the tool calls of the next replies to a request that offers tools: Ollama
sends a call whole in `message.tool_calls` (arguments an object), the OpenAI-compatible API in `delta.tool_calls`
fragments (the arguments' JSON in pieces). A model in `toolless` lacks the `tools` capability and answers a request
with tools 400 "does not support tools", as Ollama does. It counts the streams it finished and the ones whose
client went away.

Try the chat without Ollama:  python tests/fake_ollama.py --port 11434 --delay 0.2
"""

import argparse
import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

CREATED_AT = "2025-01-01T00:00:00.000000000Z"


class FakeLLM:
    def __init__(self, models=("llama3.2:latest", "qwen2.5:7b"), delay=0.0):
        self.models = list(models)
        self.delay = delay  # seconds before each token
        self.tokens = None  # the next replies, token by token; None echoes the last user message
        self.error_after = None  # after this many tokens, send an error chunk and end the stream
        self.stall_after = None  # after this many tokens, send nothing more but keep the connection open
        self.api_key = None  # when set, /v1 wants "Authorization: Bearer <api_key>"
        self.calls = []  # the tool calls of the next replies to requests with tools: [[(name, arguments), ...], ...]
        self.toolless = set()  # the models without the tools capability
        self.requests = []  # the JSON body of every chat request, in order
        self.finished = 0  # streams sent to their end
        self.aborted = 0  # streams whose client went away first
        self.app = Starlette(routes=[
            Route("/api/version", lambda request: JSONResponse({"version": "0.6.3"})),
            Route("/api/tags", self.tags),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/chat", self.ollama_chat, methods=["POST"]),
            Route("/v1/models", self.openai_models),
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
        ])

    def installed(self, name: str) -> str | None:
        "Ollama's name for a model, which may be asked for without its `:latest` tag."
        return next((m for m in self.models if m in (name, f"{name}:latest")), None)

    def reply(self, messages: list[dict]) -> list[str]:
        if self.tokens is not None: return list(self.tokens)
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        words = f"You said: {last}".split(" ")
        return words[:1] + [f" {word}" for word in words[1:]]

    def answer(self, body: dict) -> list:
        "The next reply: scripted tool calls ({name, arguments}) to a request that offers tools, else its tokens."
        if body.get("tools") and self.calls:
            return [dict(index=i, name=n, arguments=a) for i, (n, a) in enumerate(self.calls.pop(0))]
        return self.reply(body.get("messages", []))

    def refuses_tools(self, body: dict, model: str) -> str | None:
        if body.get("tools") and model in self.toolless:
            return f"registry.ollama.ai/library/{model} does not support tools"

    async def paced(self, tokens, chunk, error, end):
        "The body of one stream: chunk(token) for each token, in time, with the scripted fault; then end()."
        finished = False
        try:
            for sent, token in enumerate(tokens):
                if sent == self.stall_after: await asyncio.Event().wait()
                if sent == self.error_after:
                    finished = True
                    yield error("an error was encountered while running the model: unexpected EOF")
                    return
                await asyncio.sleep(self.delay)
                yield chunk(token)
            finished = True
            yield end()
        finally:
            if finished: self.finished += 1
            else: self.aborted += 1

    # --- Ollama ---

    async def tags(self, request: Request):
        return JSONResponse({"models": [
            {"name": m, "model": m, "modified_at": CREATED_AT, "size": 2019393189, "digest": f"{i:064x}",
             "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                         "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}
            for i, m in enumerate(self.models)]})

    async def show(self, request: Request):
        model = self.installed((await request.json()).get("model", ""))
        if model is None: return JSONResponse({"error": "model not found"}, 404)
        return JSONResponse({"modified_at": CREATED_AT, "details": {"family": "llama"},
                             "model_info": {"general.architecture": "llama"},
                             "capabilities": ["completion"] + ([] if model in self.toolless else ["tools"])})

    async def ollama_chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        model = self.installed(body.get("model", ""))
        if model is None:
            return JSONResponse({"error": f'model "{body.get("model", "")}" not found, try pulling it first'}, 404)
        if refusal := self.refuses_tools(body, model): return JSONResponse({"error": refusal}, 400)
        tokens = self.answer(body)

        def line(content, done=False, **extra):
            message = {"role": "assistant", "content": content}
            if isinstance(content, dict):  # a tool call, sent whole
                message = {"role": "assistant", "content": "", "tool_calls": [{"function": content}]}
            return json.dumps({"model": model, "created_at": CREATED_AT, "message": message, "done": done,
                               **extra}) + "\n"

        final = dict(done_reason="stop", total_duration=1000, load_duration=100, prompt_eval_count=10,
                     prompt_eval_duration=100, eval_count=len(tokens), eval_duration=800)
        if not body.get("stream", True):  # Ollama streams unless told not to
            await asyncio.sleep(self.delay * len(tokens))
            return JSONResponse(json.loads(line("".join(tokens), True, **final)))
        return StreamingResponse(self.paced(tokens, line, lambda text: json.dumps({"error": text}) + "\n",
                                            lambda: line("", True, **final)), media_type="application/x-ndjson")

    # --- OpenAI-compatible ---

    def refused(self, request: Request):
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, 401)

    async def openai_models(self, request: Request):
        return self.refused(request) or JSONResponse(
            {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                                        for m in self.models]})

    async def openai_chat(self, request: Request):
        if refusal := self.refused(request): return refusal
        body = await request.json()
        self.requests.append(body)
        model = body.get("model", "")
        if model not in self.models:
            return JSONResponse({"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                                           "code": 404}}, 404)
        if refusal := self.refuses_tools(body, model):
            return JSONResponse({"error": {"message": refusal, "type": "BadRequestError", "code": 400}}, 400)

        def event(data):
            return f"data: {json.dumps(data) if isinstance(data, dict) else data}\n\n"

        def delta(content, finish_reason=None):
            part = content if isinstance(content, dict) else {"content": content}
            return event({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                          "choices": [{"index": 0, "delta": part, "finish_reason": finish_reason}]})

        answer = self.answer(body)
        called = any(isinstance(token, dict) for token in answer)
        return StreamingResponse(self.paced(
            [part for token in answer for part in openai_parts(token)], delta,
            lambda text: event({"error": {"message": text, "type": "InternalServerError", "code": 500}}),
            lambda: delta("", "tool_calls" if called else "stop") + event("[DONE]")), media_type="text/event-stream")


def openai_parts(token) -> list:
    """A token as the deltas that carry it: text as it is; a tool call (its index among the reply's calls in
    `index`) as a delta naming it, then its arguments' JSON in pieces of 8 characters."""
    if not isinstance(token, dict): return [token]
    arguments, index = json.dumps(token["arguments"]), token.get("index", 0)
    named = {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                             "function": {"name": token["name"], "arguments": ""}}]}
    return [named] + [{"tool_calls": [{"index": index, "function": {"arguments": arguments[at:at + 8]}}]}
                      for at in range(0, len(arguments), 8)]


@contextmanager
def running(app):
    "Serves an ASGI app on a free 127.0.0.1 port in a thread; yields its base URL, stops it afterwards."
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline: raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each token")
    args = parser.parse_args()
    uvicorn.run(FakeLLM(delay=args.delay).app, host="127.0.0.1", port=args.port)
