"""The app answers requests that arrive together, as a page's htmx requests do: none fails because another one is
using the database at the same moment."""

import asyncio
import re

import httpx

from conftest import app_server, shipped

HX = {"HX-Request": "true"}
pytestmark = shipped("plugins/010_todos.py")


async def answers_under_load(url: str, requests: int = 400, at_once: int = 10) -> list[int | str]:
    "Sync routes (showing a todo, the page) and async ones (adding a todo, which the chat hears) at once."
    async with httpx.AsyncClient(base_url=url, headers=HX, timeout=30,
                                 limits=httpx.Limits(max_connections=at_once)) as client:
        added = await client.post("/todos", data={"title": "First"})
        todo = re.search(r'id="todo-(\d+)"', added.text)[1]

        async def one(n: int) -> int | str:
            try:
                if n % 3 == 0: response = await client.post("/todos", data={"title": f"Todo {n}"})
                elif n % 3 == 1: response = await client.get(f"/todos/{todo}")
                else: response = await client.get("/todos")
            except httpx.TransportError as error:  # the server dropped the connection after a failure
                return type(error).__name__
            return response.status_code

        return await asyncio.gather(*map(one, range(requests)))


def test_concurrent_requests_all_succeed(data_env):
    with app_server(data_env) as url:
        statuses = asyncio.run(answers_under_load(url))
    assert statuses.count(200) == len(statuses), {status: statuses.count(status) for status in set(statuses)}
