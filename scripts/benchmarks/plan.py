"""How much each figure measures: a full run (BENCHMARKS.md) and a quick one (CI, to keep the bench working)."""

from dataclasses import dataclass


@dataclass
class Plan:
    warmups: int  # unmeasured pairs first
    runs: int  # measured pairs
    setup_warmups: int
    setup_runs: int
    wrk_seconds: int
    latency_tokens: int  # the reply the per-token latency is measured on
    long_reply: int  # the reply the tokens per second are measured on
    streams: int  # concurrent chat streams
    stream_tokens: int
    jupyter: bool  # the fork has JupyterLab (the default); without it the set-up installs far less
    crawl_pages: int  # the size of the local site crawled
    explorer_rows: int  # the pages of the crawl whose explorer is timed
    scrapy_pairs: int  # crawls of the local site by the fork and by Scrapy, one after the other
    writer_runs: int  # pairs of the concurrent-writers figure
    writers: int  # processes writing at once
    writer_rows: int  # rows each writes
    long_list: int  # todos of the long list
    at_once: int  # concurrent requests
    urls: int  # the URL list submitted while the page is timed (the URL checker's most)
    notebook_urls: int  # the URLs the URL checker notebook's second step checks, served as an app


FULL = Plan(warmups=1, runs=7, setup_warmups=1, setup_runs=3, wrk_seconds=5, latency_tokens=200, long_reply=2000,
            streams=50, stream_tokens=1000, jupyter=True, crawl_pages=10_000, explorer_rows=100_000, scrapy_pairs=3,
            writer_runs=20, writers=4, writer_rows=2000, long_list=1000, at_once=500, urls=5000, notebook_urls=500)
QUICK = Plan(warmups=0, runs=2, setup_warmups=0, setup_runs=1, wrk_seconds=1, latency_tokens=30, long_reply=300,
             streams=10, stream_tokens=100, jupyter=False, crawl_pages=300, explorer_rows=2_000, scrapy_pairs=1,
             writer_runs=1, writers=2, writer_rows=200, long_list=100, at_once=50, urls=300, notebook_urls=20)
