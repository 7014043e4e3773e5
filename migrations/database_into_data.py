"""Migration 0.1.0: the SQLite database moves from the project root into data/.

Before 0.1.0 a fork kept <slug>.db, with SQLite's -wal and -shm files, next to server.py; config.DB_PATH is now
data/<slug>.db, in the directory template updates never touch. Copier runs this in the fork, after the merge,
when an update crosses 0.1.0. Usage: database_into_data.py SLUG
"""

import sys
from pathlib import Path

old = Path(f"{sys.argv[1]}.db")
new = Path("data") / old.name
if old.exists():
    if new.exists():
        sys.exit(f"Both {old} and {new} exist, so neither was moved: keep the one you want as {new} and delete the "
                 "other. The rest of the update is in place.")
    new.parent.mkdir(exist_ok=True)
    # The write-ahead log holds committed rows that are not in the .db file yet: it moves with it.
    for suffix in ("", "-wal", "-shm"):
        companion = old.with_name(old.name + suffix)
        if companion.exists():
            companion.rename(new.with_name(new.name + suffix))
    print(f"Moved {old} to {new}.")
