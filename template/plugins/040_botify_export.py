"""Botify export: a crawl of one of your Botify projects as a CSV, in four steps.

A workflow (see core/workflows/) over core/botify.py: choose a project, an analysis and the fields; the export job runs in
the background (Botify prepares the file, then it is downloaded into data/downloads/ and unpacked) with its
progress in every open tab. Its job is kept as soon as Botify has it, so an export cut short by a restart resumes
the same job instead of starting (and paying for) another one.
"""

import csv
import json
import re

from fasthtml.common import *

from core.botify import DEFAULT_FIELDS, DOWNLOADS, Botify, BotifyError, load_token
from core.workflows import Step, Workflow

NAME = "botify_export"
DISPLAY_NAME = "Botify export"
POLL_SECONDS = 3  # between two questions to Botify about a job
PREVIEW_ROWS = 10
MAX_SIZE = 1_000_000
SLUG = re.compile(r"[A-Za-z0-9_.-]+")  # owners, projects and analyses go into API paths
FIELD = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
FIELD_NAMES = {"url": "URL", "http_code": "HTTP status code", "depth": "Depth", "metadata.title.content": "Title",
               "metadata.description.content": "Meta description", "metadata.h1.contents": "H1",
               "compliant.is_compliant": "Compliant (indexable)", "inlinks_internal.nb.total": "Internal inlinks"}
CONNECT_FIRST = P("Connect Botify first: ", A("Connect Botify", href="/botify_connect"), ".")
CSS = """
.field-choices { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: 0 1rem; }
.field-choices label span { display: block; margin-left: 1.85rem; font-size: .75rem; color: var(--pico-muted-color); }
.preview th, .preview td { white-space: nowrap; }
"""


def choice(value: dict, label: str, chosen: str):
    "An option of a lazily loaded select: its value is the choice as JSON, so the step keeps slug and name."
    return Option(label, value=json.dumps(value), selected=json.dumps(value) == chosen)


def lazy_select(what: str, url: str, chosen: dict | None, **values):
    "A select that fills itself from url once on the page (Botify is asked only when the step is open)."
    return Select(Option("Loading…", value=""), name=what, aria_label=what.capitalize(), required=True,
                  hx_get=url, hx_vals=json.dumps(values | {"chosen": json.dumps(chosen) if chosen else ""}),
                  hx_trigger="load", hx_target="this", hx_swap="outerHTML")


# --- Step 1: the project
def project_form(run):
    if not load_token(): return CONNECT_FIRST
    return Fieldset(lazy_select("project", f"/{NAME}/projects", run.get("project")), Button("Next"), role="group")


def project_shown(run):
    project = run["project"]
    return P(Strong(project["name"]), " ", Small(f"{project['owner']}/{project['slug']}"))


# --- Step 2: the analysis
def analysis_form(run):
    project = run["project"]
    return Fieldset(lazy_select("analysis", f"/{NAME}/analyses", run.get("analysis"), owner=project["owner"],
                                project=project["slug"]),
                    Button("Next"), role="group")


def analysis_shown(run):
    return P(Strong(run["analysis"]["name"]), " ", Small(run["analysis"]["slug"]))


# --- Step 3: the fields
def fields_form(run):
    chosen = run.get("fields") or {"fields": DEFAULT_FIELDS, "size": 10_000}
    extra = [field for field in chosen["fields"] if field not in DEFAULT_FIELDS]
    return (Style(CSS),
            Fieldset(Legend("Columns"),
                     Div(*[Label(Input(type="checkbox", name="field", value=field, checked=field in chosen["fields"]),
                                 FIELD_NAMES[field], Span(field)) for field in DEFAULT_FIELDS],
                         cls="field-choices")),
            Div(Label("More fields, comma-separated",
                      Input(name="extra", value=", ".join(extra), placeholder="segments.pagetype.value, …")),
                Label("At most this many URLs",
                      Input(type="number", name="size", value=chosen["size"], min=1, max=MAX_SIZE, required=True)),
                cls="grid"),
            Button("Next"))


def fields_shown(run):
    chosen = run["fields"]
    return P(", ".join(FIELD_NAMES.get(field, field) for field in chosen["fields"]), Br(),
             Small(f"At most {chosen['size']:,} URLs"))


# --- Step 4: the export, in the background
def export_form(run):
    project, analysis = run["project"], run["analysis"]
    return (P(f"Botify prepares the export of {project['name']}, analysis {analysis['name']}; then it is downloaded "
              "into data/downloads/ and unpacked. That can take a few minutes: you may leave this page meanwhile."),
            Button("Start the export"))


def export_shown(run):
    export = run["export"]
    header, *rows = export["preview"]
    count = f"{export['rows']:,} URLs" if export["rows"] is not None else "The crawl"
    return (Style(CSS),
            P(f"{count} exported by Botify job {export['job_id']}."),
            P(A(export["csv"], href=f"/{NAME}/runs/{run.key}/csv", download=True, role="button", cls="outline"),
              " ", Small("in data/downloads/")),
            Div(Table(Thead(Tr(*[Th(FIELD_NAMES.get(name, name), title=name) for name in header])),
                      Tbody(*[Tr(*map(Td, row)) for row in rows]),
                      cls="striped preview"),
                cls="overflow-auto", tabindex="0", role="region", aria_label="Preview"),  # scrolls: by keyboard too
            Small(f"The first {len(rows)} rows." if rows else "The export has no rows."))


def preview(path) -> list[list[str]]:
    "The header and the first rows of a CSV."
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        return [row for _, row in zip(range(PREVIEW_ROWS + 1), reader)]


def setup(plugin):
    def token() -> str:
        if saved := load_token(): return saved
        raise BotifyError("Connect Botify first: no API token is saved.")

    def read_choice(form, what: str, *ids: str) -> dict:
        "The option chosen in a lazy select: its ids (which go into API paths) and its name."
        try: value = json.loads(form.get(what) or "null")
        except ValueError: value = None
        if not (isinstance(value, dict) and isinstance(value.get("name"), str)
                and all(SLUG.fullmatch(str(value.get(key, ""))) for key in ids)):
            raise plugin.Refused(422, f"Choose {'an' if what[0] in 'aeiou' else 'a'} {what} in the list.")
        return {key: value[key] for key in (*ids, "name")}

    def read_fields(run, form):
        extra = [field.strip() for field in form.get("extra", "").split(",") if field.strip()]
        fields = list(dict.fromkeys(form.getlist("field") + extra))
        if not fields: raise plugin.Refused(422, "Choose at least one field.")
        if wrong := [field for field in fields if not FIELD.fullmatch(field)]:
            raise plugin.Refused(422, f"Not a field name: {', '.join(wrong)} (like metadata.title.content).")
        try: size = int(form.get("size", ""))
        except ValueError: size = 0
        if not 1 <= size <= MAX_SIZE: raise plugin.Refused(422, f"Export 1 to {MAX_SIZE:,} URLs.")
        return {"fields": fields, "size": size}

    async def export(run, job):
        project, analysis, chosen = run["project"], run["analysis"], run["fields"]
        owner, slug = project["owner"], project["slug"]

        async def report(event):
            if event["stage"] == "download": await job.progress(event["received"], event["total"], event["message"])
            else: await job.progress(0, None, event["message"])

        async with Botify(token(), poll_interval=POLL_SECONDS) as api:
            if "job_url" not in job.saved:  # after a restart, the job Botify has already
                started = await api.start_export(owner, slug, analysis["slug"], chosen["fields"], chosen["size"])
                await job.keep(job_url=started["job_url"], job_id=started["job_id"])
            done = await api.wait_for_job(job.saved["job_url"], on_progress=report)
            path = await api.download_csv(done["results"]["download_url"],
                                          f"{owner}_{slug}_{analysis['slug']}_{job.saved['job_id']}.csv", report)
        rows = done["results"].get("nb_lines")
        await job.progress(1, 1, f"Exported {f'{rows:,} URLs' if rows is not None else 'the crawl'} to {path.name}.")
        return {"csv": path.name, "job_id": job.saved["job_id"], "rows": rows, "preview": preview(path)}

    flow = Workflow(plugin, [
        Step("project", "Choose a project", form=project_form, show=project_shown,
             submit=lambda run, form: read_choice(form, "project", "owner", "slug")),
        Step("analysis", "Choose an analysis", form=analysis_form, show=analysis_shown,
             submit=lambda run, form: read_choice(form, "analysis", "slug")),
        Step("fields", "Choose the fields", form=fields_form, show=fields_shown, submit=read_fields),
        Step("export", "Export", form=export_form, show=export_shown, work=export),
    ], intro=P("A crawl of one of your Botify projects as a CSV, with the columns you choose."))

    @plugin.route("/projects", methods="get")
    async def projects(chosen: str = ""):
        try:
            async with Botify(token()) as api: found = await api.projects(await api.username())
        except BotifyError as error:
            return P(str(error), cls="problem")
        if not found: return P("This Botify account sees no projects.", cls="problem")
        return Select(*[choice({"owner": p["user"]["login"], "slug": p["slug"], "name": p["name"]},
                               f"{p['name']} · {p['user']['login']}", chosen) for p in found],
                      name="project", aria_label="Project", required=True)

    @plugin.route("/analyses", methods="get")
    async def analyses(owner: str, project: str, chosen: str = ""):
        if not (SLUG.fullmatch(owner) and SLUG.fullmatch(project)): return P("No such project.", cls="problem")
        try:
            async with Botify(token()) as api: found = await api.analyses(owner, project)
        except BotifyError as error:
            return P(str(error), cls="problem")
        if not found: return P("This project has no finished analysis yet.", cls="problem")
        return Select(*[choice({"slug": a["slug"], "name": a["name"]}, f"{a['name']} · {a['slug']}",
                               chosen) for a in found],
                      name="analysis", aria_label="Analysis", required=True)

    flow.serve_csv("export", DOWNLOADS, "This run has no export in data/downloads: export first.")
