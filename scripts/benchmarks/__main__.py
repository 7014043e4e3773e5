"""`scripts/bench [--quick] [--output FILE]`: every family of figures in turn, on one rendered fork, into
BENCHMARKS.md (see __init__.py). `scripts/bench --million [PAGES]`: the site crawl at scale alone (million.py), its
table printed, for BENCHMARKS.md's notes."""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from template_tools import ROOT, render, snapshot

from . import __doc__ as about
from .busy_app import busy_app_row
from .chat import chat_rows, stamped_llm
from .copying import NEW, copier_rows, with_upstream_change
from .fork_setup import setup_rows
from .landing_page import server_rows
from .measuring import Scratch, run
from .million import million_table
from .notebook_apps import notebook_app_rows
from .plan import FULL, QUICK
from .report import kept_notes, report
from .site_crawl import crawl_rows, explorer_rows, scrapy_rows
from .writers import writer_rows


def main():
    parser = argparse.ArgumentParser(prog="scripts/bench", description=about.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few pairs of a smaller workload, for CI")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="default: BENCHMARKS.md")
    parser.add_argument("--million", type=int, nargs="?", const=1_000_000, metavar="PAGES",
                        help="only the site crawl at scale, of PAGES pages (1,000,000 unless told): hours, not in CI")
    args = parser.parse_args()
    # Every process measured has its modules' bytecode cached, as a usual machine has it (uv leaves compiling to the
    # first import): this machine's PYTHONDONTWRITEBYTECODE made each new process of the fork compile its imports.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.million: return print(million_run(args.million))
    plan = QUICK if args.quick else FULL
    if not shutil.which("wrk"): sys.exit("scripts/bench needs wrk for requests per second: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        fresh = Scratch(Path(scratch))
        template = snapshot(fresh("template"))
        template = with_upstream_change(template, template / "template" / "README.md.jinja")
        rows = copier_rows(plan, fresh, template)
        fork = render(fresh("fork"), src=template, vcs_ref=NEW, flavour="pipulate", jupyter=plan.jupyter)
        rows += setup_rows(plan, fork, fresh)
        with stamped_llm(fork, fresh) as llm_url:
            env = os.environ | {"HOST": "127.0.0.1", "DEV": "0", "LLM_BACKEND": "ollama", "OLLAMA_HOST": llm_url,
                                "DATA_DIR": str(fresh("data")), "LOG_DIR": str(fresh("logs"))}
            rows += server_rows(plan, fork, env, fresh)
            rows.append(busy_app_row(plan, fork, env, fresh))
            rows += chat_rows(plan, fork, env, llm_url)
            rows += asyncio.run(crawl_rows(plan, fork, env | {"DATA_DIR": str(fresh("crawl-data"))}, fresh))
            rows += asyncio.run(explorer_rows(plan, fork, env | {"DATA_DIR": str(fresh("explorer-data"))}))
            rows += scrapy_rows(plan, fork, env, fresh)
        rows += writer_rows(plan, fork, env, fresh)
        if plan.jupyter: rows += notebook_app_rows(plan, fork, env, fresh)  # the apps need the fork's JupyterLab

    args.output.write_text(report(plan, args.quick, rows) + kept_notes(args.output))
    print(f"Wrote {args.output}", file=sys.stderr)


def million_run(pages: int) -> str:
    "The site crawl at scale, on a fork of the template as it is now (uncommitted changes included)."
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        fresh = Scratch(Path(scratch))
        fork = render(fresh("fork"), src=snapshot(fresh("template")), flavour="pipulate", jupyter=False)
        run([fork / "run", "setup"], cwd=fork, env=os.environ | {"PYTHON": "python3"})
        env = os.environ | {"HOST": "127.0.0.1", "DEV": "0", "LOG_DIR": str(fresh("logs"))}
        return million_table(pages, fork, env, fresh("million"))


if __name__ == "__main__":
    main()
