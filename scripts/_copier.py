"""copier's command line as scripts/new runs it: an answer copier refuses (an unknown flavour, a port out of range,
a number that is not one) ends it with one line naming the question, instead of a traceback. Any other error keeps
its traceback, which a bug report needs."""

import sys
import traceback
import warnings
from pathlib import Path

from copier.__main__ import CopierApp

ANSWERS_MODULE = Path("copier", "_user_data.py")  # where copier casts, checks and validates answers


def refused_answer(error: ValueError) -> str | None:
    """copier's message for an answer it refused, with the question's name when the message lacks it (Python's own
    "invalid literal for int()"); None when the error did not come from checking an answer."""
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)
              if Path(frame.f_code.co_filename).match(f"*/{ANSWERS_MODULE}")]
    if not frames: return None
    question = getattr(frames[-1].f_locals.get("self"), "var_name", None)
    message = str(error)
    return message if question is None or f"'{question}'" in message else f"{question}: {message}"


if __name__ == "__main__":
    # A warning (DirtyLocalWarning: the template has uncommitted changes) as one line, not its source line too.
    warnings.formatwarning = lambda message, category, *_: f"copier: {message}\n"
    try:
        CopierApp.run()
    except ValueError as error:
        if (message := refused_answer(error)) is None: raise
        sys.exit(f"scripts/new: {message}")
