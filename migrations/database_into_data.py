"""Migration 0.1.0: the SQLite database becomes data/app.db, whatever the project slug.

Before 0.1.0 a fork kept its database as <slug>.db next to server.py, and later as data/<slug>.db: named after the
project_slug answer, so an update that changed the slug left the data behind. config.DB_PATH is now data/app.db,
in the directory template updates never touch. Copier runs this in the fork after the merge when an update crosses
0.1.0. The fork's slug before the update is in its last commit's answers, so an update that changes the slug too
still finds the data. Usage: database_into_data.py SLUG (the slug after the update)
"""

import subprocess
import sys
from pathlib import Path

import yaml

NEW = Path("data/app.db")
# SQLite's write-ahead log holds committed rows that are not in the .db file yet: it moves with it.
COMPANIONS = ("", "-wal", "-shm")


def slug_before_update() -> str | None:
    committed = subprocess.run(["git", "show", "HEAD:.copier-answers.yml"], capture_output=True, text=True)
    return yaml.safe_load(committed.stdout or "{}").get("project_slug")


slugs = dict.fromkeys(filter(None, [slug_before_update(), sys.argv[1]]))
found = [path for slug in slugs for path in (Path("data") / f"{slug}.db", Path(f"{slug}.db")) if path.exists()]
candidates = [*found, NEW] if NEW.exists() else found
if len(candidates) > 1:
    sys.exit(f"{' and '.join(map(str, candidates))} exist, so none was moved and the update is not applied: keep the "
             f"one you want as {NEW}, delete the others, then run ./run update --trust again.")
if found:
    [old] = found
    NEW.parent.mkdir(exist_ok=True)
    for suffix in COMPANIONS:
        companion = old.with_name(old.name + suffix)
        if companion.exists():
            companion.rename(NEW.with_name(NEW.name + suffix))
    print(f"Moved {old} to {NEW}.")
