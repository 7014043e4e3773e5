"""A fake Botify API, for the tests and for trying the Botify apps without a Botify account.

It answers the part of the real API the app uses, with the same paths, token header and JSON shapes:
GET /v1/authentication/profile; GET /v1/projects/{user} and GET /v1/analyses/{owner}/{project}, paginated (results,
count, page, size, next, previous); POST /v1/jobs, which checks the export payload like Botify does, and
GET /v1/jobs/{id}, where an export goes CREATED, PROCESSING, then DONE (or FAILED) as time passes; and the download
link of a finished export, a gzipped CSV served without the token, like the signed storage link Botify gives.

Tests script faults through the attributes of FakeBotify: statuses for the next API requests (401, 403, 429 with
Retry-After, 5xx) or a stall (an answer a second late), export jobs that fail, downloads cut off halfway. It records
the requests it got.

Try the app without Botify:  python tests/fake_botify.py --port 8890
then start the app with BOTIFY_API_URL=http://127.0.0.1:8890 and connect with the token it prints.
"""

import argparse
import asyncio
import csv
import gzip
import io
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN = "fake-botify-token-0123456789abcdef"
USERNAME = "jane.doe"
PROJECTS = [
    {"name": "Example Shop", "slug": "example-shop", "user": {"login": "acme-org"}},
    {"name": "Example Blog", "slug": "example-blog", "user": {"login": "acme-org"}},
    {"name": "Docs", "slug": "docs", "user": {"login": "acme-org"}},
    {"name": "Help Center", "slug": "help-center", "user": {"login": "acme-org"}},
    {"name": "Personal Site", "slug": "personal-site", "user": {"login": USERNAME}},
]
ANALYSES = [
    {"slug": "20250401", "name": "2025-04-01", "status": "running"},
    {"slug": "20250301", "name": "2025-03-01", "status": "success"},
    {"slug": "20250201-2", "name": "2025-02-01 (2)", "status": "success"},
    {"slug": "20250201", "name": "2025-02-01", "status": "success"},
    {"slug": "20250101", "name": "2025-01-01", "status": "success"},
]


def crawl_value(field: str, row: int) -> str | int | bool:
    "A plausible value of a crawl field for the row-th URL of the fake site."
    return {"url": f"https://www.example.com/page-{row}", "http_code": 200 if row % 7 else 301, "depth": row % 4,
            "metadata.title.content": f"Page {row} | Example", "metadata.description.content": f"About page {row}.",
            "metadata.h1.contents": f"Page {row}", "compliant.is_compliant": row % 7 != 0,
            "inlinks_internal.nb.total": 10 - row % 10}.get(field, "")


class FakeBotify:
    def __init__(self, token=TOKEN, username=USERNAME, page_size=2, step_delay=0.2, urls=25):
        self.token, self.username = token, username
        self.page_size = page_size  # items per page unless the request asks for another size
        self.step_delay = step_delay  # seconds an export job spends CREATED, then PROCESSING
        self.urls = urls  # URLs in the fake crawl: an export has min(urls, export_size) rows
        self.faults = []  # for the next API requests, one each, in order: a status to answer with, or "stall"
        self.retry_after = "1"  # the Retry-After of a 429
        self.fail_jobs = None  # when set, the error message of every new export job, which then FAILS
        self.break_downloads = 0  # the next this-many downloads stop halfway
        self.requests = []  # (method, path) of every API request
        self.download_requests = []  # the headers of every download request
        self.jobs = {}
        self.app = Starlette(routes=[
            Route("/v1/authentication/profile", self.profile),
            Route("/v1/projects/{user}", self.projects),
            Route("/v1/analyses/{owner}/{project}", self.analyses),
            Route("/v1/jobs", self.create_job, methods=["POST"]),
            Route("/v1/jobs/{job_id:int}", self.job),
            Route("/downloads/{job_id:int}.csv.gz", self.download),
        ])

    # --- What every API request goes through ---

    async def refusal(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        fault = self.faults.pop(0) if self.faults else None
        if fault == "stall": await asyncio.sleep(1)
        elif fault: return self.fault(fault)
        if request.headers.get("authorization") != f"Token {self.token}": return self.fault(401)

    def fault(self, status: int) -> Response:
        if status == 401: return JSONResponse({"detail": "Invalid token."}, 401)
        if status == 403: return JSONResponse({"detail": "You do not have permission to perform this action."}, 403)
        if status == 429:
            return JSONResponse({"error": {"error_code": 1053, "message": "Too many requests"}}, 429,
                                headers={"Retry-After": self.retry_after})
        return JSONResponse({"error": {"message": "Internal server error"}}, status)

    def page(self, request: Request, items: list) -> JSONResponse:
        number, size = int(request.query_params.get("page", 1)), int(request.query_params.get("size", self.page_size))
        more = number * size < len(items)
        return JSONResponse({
            "count": len(items), "page": number, "size": size, "results": items[(number - 1) * size:number * size],
            "next": str(request.url.include_query_params(page=number + 1, size=size)) if more else None,
            "previous": str(request.url.include_query_params(page=number - 1, size=size)) if number > 1 else None})

    # --- Account, projects, analyses ---

    async def profile(self, request: Request):
        return await self.refusal(request) or JSONResponse(
            {"data": {"username": self.username, "email": f"{self.username}@example.com", "first_name": "Jane",
                      "last_name": "Doe"}})

    async def projects(self, request: Request):
        user = request.path_params["user"]
        return await self.refusal(request) or self.page(
            request, [p for p in PROJECTS if user == self.username or p["user"]["login"] == user])

    def project(self, owner: str, slug: str) -> dict | None:
        return next((p for p in PROJECTS if (p["user"]["login"], p["slug"]) == (owner, slug)), None)

    async def analyses(self, request: Request):
        if refusal := await self.refusal(request): return refusal
        if not self.project(request.path_params["owner"], request.path_params["project"]):
            return JSONResponse({"error": {"error_code": 1001, "message": "Project not found"}}, 404)
        only_success = request.query_params.get("only_success") == "true"
        return self.page(request, [a for a in ANALYSES if a["status"] == "success" or not only_success])

    # --- Export jobs ---

    def invalid_export(self, body: dict) -> str | None:
        "What Botify would reject in an export job request, or None."
        payload = body.get("payload") or {}
        query = payload.get("query") or {}
        bql = query.get("query") or {}
        if body.get("job_type") != "export": return "job_type must be export"
        if not self.project(payload.get("username"), payload.get("project")): return "Project not found"
        if payload.get("connector") != "direct_download" or payload.get("formatter") != "csv":
            return "this fake knows the direct_download connector with the csv formatter only"
        if not isinstance(payload.get("export_size"), int) or payload["export_size"] < 1:
            return "export_size must be a positive integer"
        collections = query.get("collections") or []
        if len(collections) != 1 or collections[0].removeprefix("crawl.") not in {a["slug"] for a in ANALYSES}:
            return f"Unknown collection(s): {collections}"
        if "metrics" not in bql: return "query.metrics is required"
        if not bql.get("dimensions") or any(not d.startswith(f"{collections[0]}.") for d in bql["dimensions"]):
            return f"dimensions must be fields of {collections[0]}"

    async def create_job(self, request: Request):
        if refusal := await self.refusal(request): return refusal
        body = await request.json()
        if problem := self.invalid_export(body):
            return JSONResponse({"error": {"error_code": 1001, "message": problem}}, 400)
        job_id = 1000 + len(self.jobs)
        self.jobs[job_id] = {"created": time.monotonic(), "payload": body["payload"], "error": self.fail_jobs}
        return JSONResponse(self.job_state(request, job_id), 201)

    def job_state(self, request: Request, job_id: int) -> dict:
        job = self.jobs[job_id]
        steps = int((time.monotonic() - job["created"]) / self.step_delay) if self.step_delay else 2
        status = ("CREATED", "PROCESSING")[steps] if steps < 2 else "FAILED" if job["error"] else "DONE"
        state = {"job_id": job_id, "job_type": "export", "job_url": f"/v1/jobs/{job_id}", "job_status": status,
                 "payload": job["payload"], "results": None, "date_created": "2025-04-02T10:00:00Z",
                 "user": self.username, "metadata": None}
        if status == "DONE":
            state["results"] = {"download_url": f"{request.base_url}downloads/{job_id}.csv.gz",
                                "nb_lines": len(self.rows(job_id)) - 1}
        if status == "FAILED":
            state["error"] = {"error_code": 1060, "message": job["error"]}
        return state

    async def job(self, request: Request):
        job_id = request.path_params["job_id"]
        if refusal := await self.refusal(request): return refusal
        if job_id not in self.jobs: return JSONResponse({"detail": "Not found."}, 404)
        return JSONResponse(self.job_state(request, job_id))

    # --- The export file ---

    def rows(self, job_id: int) -> list[list]:
        "The export as CSV rows, the header first: one column per requested field."
        payload = self.jobs[job_id]["payload"]
        collection = payload["query"]["collections"][0]
        fields = [d.removeprefix(f"{collection}.") for d in payload["query"]["query"]["dimensions"]]
        return [fields] + [[crawl_value(f, row) for f in fields]
                           for row in range(min(self.urls, payload["export_size"]))]

    def export_file(self, job_id: int) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerows(self.rows(job_id))
        return gzip.compress(text.getvalue().encode())

    async def download(self, request: Request):
        self.download_requests.append(dict(request.headers))
        job_id = request.path_params["job_id"]
        if job_id not in self.jobs or self.job_state(request, job_id)["job_status"] != "DONE":
            return Response("Not found", 404)
        body = self.export_file(job_id)
        headers = {"Content-Length": str(len(body)), "Content-Type": "application/gzip"}
        if not self.break_downloads: return Response(body, headers=headers)
        self.break_downloads -= 1

        async def halfway():
            yield body[:len(body) // 2]
            raise ConnectionResetError("the fake cut this download off halfway")

        return StreamingResponse(halfway(), headers=headers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds an export spends in each state")
    args = parser.parse_args()
    print(f"Fake Botify API on http://127.0.0.1:{args.port}, token: {TOKEN}")
    uvicorn.run(FakeBotify(step_delay=args.delay).app, host="127.0.0.1", port=args.port)
