"""What the template and its forks cost, each figure measured against a baseline on this machine.

`scripts/bench` writes BENCHMARKS.md. `scripts/bench --quick --output FILE` runs a few pairs of a smaller workload:
CI runs it only to keep the bench working, its numbers are not for reading.

Every figure is measured in pairs after a warm-up: a baseline run, then a subject run, so that both see the same
state of the machine. The table gives the median of each side and the median of the per-pair ratios (or, for
latencies, differences). Servers run in the rendered fork's environment, on free 127.0.0.1 ports, and are stopped
at the end; requests per second come from wrk (apt-get install wrk), with keep-alive.

One module per family of figures, each giving its rows: copying (copier), fork_setup, landing_page (the rendered
server against a bare FastHTML app), busy_app, chat, site_crawl, writers, notebook_apps. measuring.py holds what they
share (rounds in pairs, medians, processes and servers, their CPU and memory, the load average); plan.py the sizes
of a full and a quick run; report.py writes the table; __main__.py runs the families in order.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # template_tools: rendering, snapshots
