"""The key-value store: UI state that a restart must restore (the active profile, the last app, the model).

Template-owned: `copier update` keeps this file current. Plugins reach it as `plugin.store`.
"""

import json
from collections.abc import MutableMapping

from fastlite import NotFoundError

from core.database import lookup


class Store(MutableMapping):
    "A dict kept in a SQLite table (key, value). Values are stored as JSON, so they come back with their type."

    def __init__(self, table): self.table = table

    def __getitem__(self, key: str):
        if (row := lookup(self.table, "key", key)) is None: raise KeyError(key)
        return json.loads(row.value)

    def __setitem__(self, key: str, value): self.table.upsert(dict(key=key, value=json.dumps(value)))

    def __delitem__(self, key: str):
        try: self.table.delete(key)
        except NotFoundError: raise KeyError(key) from None

    def __iter__(self): return iter([row.key for row in self.table()])

    def __len__(self): return self.table.count
