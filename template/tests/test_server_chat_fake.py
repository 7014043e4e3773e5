"""The fake LLM server speaks the real protocols: the official `ollama` client talks to it like to Ollama."""

import json
import time

import httpx
import ollama
import pytest


def test_lists_models_and_version(fake):
    assert [m.model for m in ollama.Client(host=fake.url).list().models] == ["llama3.2:latest", "qwen2.5:7b"]
    assert httpx.get(f"{fake.url}/api/version").json() == {"version": "0.6.3"}


def test_streams_chunks_in_time(fake):
    fake.tokens, fake.delay = ["One", " two", " three"], 0.2
    chunks, arrivals, finished_then = [], [], []
    for part in ollama.Client(host=fake.url).chat("llama3.2", [{"role": "user", "content": "count"}], stream=True):
        chunks.append(part)
        arrivals.append(time.monotonic())
        finished_then.append(fake.finished)
    assert "".join(c.message.content for c in chunks) == "One two three"
    assert chunks[-1].done and chunks[-1].done_reason == "stop" and not chunks[0].done
    assert finished_then[0] == 0 and arrivals[2] - arrivals[0] > 0.3  # one by one, paced, not all at the end
    assert fake.requests[0]["messages"] == [{"role": "user", "content": "count"}]


def test_answers_whole_without_streaming(fake):
    response = ollama.Client(host=fake.url).chat("qwen2.5:7b", [{"role": "user", "content": "hi"}])
    assert response.message.content == "You said: hi" and response.done


def test_unknown_model_is_404(fake):
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=fake.url).chat("mistral", [{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 404
    assert raised.value.error == 'model "mistral" not found, try pulling it first'


def test_error_line_mid_stream(fake):
    fake.error_after = 2
    parts = []
    with pytest.raises(ollama.ResponseError, match="unexpected EOF"):
        for part in ollama.Client(host=fake.url).chat("llama3.2", [{"role": "user", "content": "a b c"}], stream=True):
            parts.append(part.message.content)
    assert parts == ["You", " said:"]


def test_stall_leaves_the_client_waiting(fake):
    fake.stall_after = 1
    stream = ollama.Client(host=fake.url, timeout=0.5).chat("llama3.2", [{"role": "user", "content": "x"}],
                                                            stream=True)
    assert next(stream).message.content == "You"
    with pytest.raises(httpx.ReadTimeout):
        next(stream)


def test_openai_compatible_stream(fake):
    fake.tokens, fake.api_key = ["Hi", " there"], "sk-test"
    with httpx.stream("POST", f"{fake.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                      json={"model": "qwen2.5:7b", "messages": [], "stream": True}) as response:
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert [e for e in events if '"Hi"' in e or '" there"' in e] == events[:2]
    assert httpx.get(f"{fake.url}/v1/models").status_code == 401
    assert httpx.post(f"{fake.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                      json={"model": "mistral", "messages": []}).status_code == 404


def add_todo(title: str) -> str:
    """Adds a todo.

    Args:
        title: what needs doing
    """


@pytest.mark.asyncio
async def test_ollama_tool_calls_reach_the_official_client_as_tool_calls(fake):
    fake.calls = [[("add_todo", {"title": "Buy milk"}), ("list_todos", {})]]
    stream = await ollama.AsyncClient(host=fake.url).chat("llama3.2", [{"role": "user", "content": "milk"}],
                                                          tools=[add_todo], stream=True)
    calls = [call async for part in stream for call in part.message.tool_calls or []]
    assert all(isinstance(call, ollama.Message.ToolCall) for call in calls)
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("add_todo", {"title": "Buy milk"}),
                                                                              ("list_todos", {})]
    assert fake.requests[0]["tools"][0]["function"]["name"] == "add_todo"  # the client's schema of the function
    reply = await ollama.AsyncClient(host=fake.url).chat("llama3.2", [{"role": "tool", "content": "{}"}],
                                                         tools=[add_todo])
    assert reply.message.content == "You said: " and not reply.message.tool_calls  # the script is used up


def test_openai_tool_call_arguments_come_in_fragments(fake):
    fake.calls = [[("crawl_pages", {"finding": "missing_title", "limit": 5})]]
    body = {"model": "qwen2.5:7b", "messages": [], "stream": True, "tools": [{"type": "function", "function": {}}]}
    with httpx.stream("POST", f"{fake.url}/v1/chat/completions", json=body) as response:
        chunks = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data: {")]
    parts = [part for chunk in chunks for part in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert parts[0] == {"index": 0, "id": "call_0", "type": "function",
                        "function": {"name": "crawl_pages", "arguments": ""}}
    fragments = [part["function"]["arguments"] for part in parts[1:]]
    assert len(fragments) > 2 and json.loads("".join(fragments)) == {"finding": "missing_title", "limit": 5}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_a_model_without_tools_says_so(fake, path):
    fake.toolless = {"qwen2.5:7b"}
    show = httpx.post(f"{fake.url}/api/show", json={"model": "qwen2.5:7b"}).json()
    assert "tools" not in show["capabilities"] and "tools" in ollama.Client(host=fake.url).show("llama3.2").capabilities
    answer = httpx.post(f"{fake.url}{path}", json={"model": "qwen2.5:7b", "messages": [], "tools": [{}]})
    assert answer.status_code == 400 and "does not support tools" in answer.text
