"""The runs of a workflow, each a row of the pipeline table: its key, profile, open step and the values of its done
steps."""

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from fasthtml.common import *
from fastlite import NotFoundError, Table

# The big columns last: SQLite walks a long value's overflow pages to reach the columns after it, so the run
# picker, which reads every run but its state, would read every state too.
TABLES = {"pipeline": dict(key=str, app=str, profile_id=int, step=str, created=str, used=str, job=str, state=str,
                           pk="key")}
KEY = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")


@dataclass
class Run:
    "One run of a workflow, as the pipeline table keeps it. run[step id] is a done step's value."
    key: str
    app: str
    profile_id: int
    step: str  # the open step's id; "" once every step is done
    state: dict = field(default_factory=dict)  # step id -> its value
    job: dict | None = None  # the open step's background job: {input, saved, status: working or failed, error}
    created: str = ""  # empty until the first step is done: a new run is saved only then
    used: str = ""

    def __getitem__(self, step_id: str): return self.state[step_id]

    def get(self, step_id: str, default=None): return self.state.get(step_id, default)

    @classmethod
    def from_row(cls, row: dict):
        return cls(**row | {"state": json.loads(row["state"]), "job": json.loads(row["job"] or "null")})

    def row(self) -> dict:
        "The run as its row: the values as JSON (dataclasses.asdict would copy a big job's results first)."
        return vars(self) | {"state": json.dumps(self.state), "job": json.dumps(self.job) if self.job else None}



@cache
def pipeline(db, declare) -> Table:
    """The pipeline table, declared with the core once per process (so a deleted profile's runs go with it).
    The core scopes its own handle to the active profile before each request; a background step outlives its
    request, and the active profile may change meanwhile, so the runs are read and written through a handle of
    their own, by key, with the profile checked here."""
    declare(TABLES)
    return Table(db, "pipeline")


def now() -> str: return datetime.now().isoformat()


def run_label(run: Run, steps: dict, at_work: bool) -> str:
    "When the run started, and where it is; at_work: whether a job of this process has it."
    started = datetime.fromisoformat(run.created).strftime("%-d %b %Y, %H:%M")
    if at_work: at = "at work"
    elif run.job: at = "failed" if run.job["status"] == "failed" else "interrupted"
    elif not run.step: at = "done"
    else: at = f"step {list(steps).index(run.step) + 1} of {len(steps)}"
    return f"{started} · {at}"


class Runs:
    """One workflow's runs in the pipeline table, as the active profile sees them: another profile's run, or
    another app's, is a 404 (for the plugin's own routes too)."""

    def __init__(self, plugin, first_step: str):
        self.plugin, self.first_step = plugin, first_step
        self.table = pipeline(plugin.db, plugin.declare)

    def get(self, key: str) -> Run:
        row = self.table.get(key, default=None)
        if row is None or (row["app"], row["profile_id"]) != (self.plugin.name, self.plugin.profile().id):
            raise NotFoundError(key)
        return Run.from_row(row)

    def saved(self, key: str) -> bool:
        "Whether a run (of any app or profile) is in the table under this key."
        return self.table.get(key, default=None) is not None

    def new(self, key: str | None = None) -> Run:
        key = key or f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        return Run(key, self.plugin.name, self.plugin.profile().id, step=self.first_step)

    def listed(self) -> list[Run]:
        "The active profile's runs, the one used last first, for the run picker: without their state (it may be big)."
        rows = self.table(select="key, app, profile_id, step, job, created, used", where="app = ? AND profile_id = ?",
                          where_args=[self.plugin.name, self.plugin.profile().id], order_by="used DESC")
        return [Run.from_row(row | {"state": "{}"}) for row in rows]

    def keys(self) -> set[str]:
        "The keys of this app's runs, every profile's: for files kept per run, to tell which are still wanted."
        return {row["key"] for row in self.table(select="key", where="app = ?", where_args=[self.plugin.name])}

    def last(self) -> Run:
        "The run used last, else a new one: the run the page opens."
        used_last = first(self.listed())
        return self.get(used_last.key) if used_last else self.new()

    def save(self, run: Run):
        run.created, run.used = run.created or now(), now()
        self.table.upsert(run.row())

    def update(self, run: Run, *columns: str) -> bool:
        "Writes some columns of a run; False when the run is gone (deleted with its profile, say)."
        row = run.row()
        try: self.table.update({"key": run.key} | {column: row[column] for column in columns})
        except NotFoundError: return False
        return True

    def delete(self, run: Run): self.table.delete(run.key)
