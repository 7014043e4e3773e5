"""Signals checked against the crawl's own data: canonical targets, hreflang annotations, near-duplicate content.

Canonicals are findings over the page table (a canonical to a page the crawl found broken, redirecting or not
indexable). hreflang and near-duplicates need every page first, so check() runs once a crawl ends (check_crawl: in
a process of its own when it has MinHashes to compare), on a connection of its own, and writes its verdicts into the
page table:

- hreflang: each annotation's language code (ISO 639-1, an optional script and region, or x-default), the page's
  reference to itself, and the return link every page it names must give back (Google ignores a pair without one);
  a target the crawl did not fetch is not judged.
- near-duplicates: datasketch's MinHash of each page's five-word shingles (taken while the page is parsed; pages of
  fewer than MIN_WORDS words are too short to judge), then LSH as its MinHashLSH does it to find, for each page, the
  most similar other one at or above the threshold the crawl was given (an estimated Jaccard similarity, 0 to 1).
"""

import asyncio
import re
import sqlite3
import sys
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from core.seo.findings import HTML_200, REDIRECTS, Finding

COLUMNS = {"minhash": "BLOB", "hreflang_problems": "TEXT", "near_duplicate_of": "TEXT", "similarity": "REAL"}
EXPORTED = ["hreflang_problems", "near_duplicate_of", "similarity"]  # the MinHash itself is no reading matter
NUM_PERM = 64  # MinHash permutations: the similarity's error is about 1/sqrt(64), 0.125, before LSH's check
SCHEME = "affine32"  # datasketch's: 32-bit hash values (4 bytes each in the page table)
SHINGLE = 5  # words
MIN_WORDS = 50
NEIGHBOURS = 10  # pages each page is compared with on either side, in each LSH band's bucket
CHUNK = 10_000  # pages or pairs at a time, so the memory near_duplicates() takes is the MinHashes' and little more
CHANCE = 1 / 256  # how often two different MinHash values agree in their lowest 8 bits, all near_duplicates() keeps
LANGUAGES = set(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el "
    "en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu "
    "ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na "
    "nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so "
    "sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"
    .split())
CODE = re.compile(r"(?i)([a-z]{2})(-[a-z]{4})?(-[a-z]{2}|-\d{3})?")


@cache
def hasher():
    "An empty MinHash whose permutations every page's reuses (making them is most of a small page's cost)."
    from datasketch import MinHash  # imported on first use: it brings scipy, which the app's start can do without
    return MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32, scheme=SCHEME)


def signature(words: list[str]) -> bytes | None:
    "The MinHash of a page's text, as bytes for the page table; None for a page too short to judge."
    if len(words) < MIN_WORDS: return None
    from datasketch import MinHash
    words = [word.lower() for word in words]
    shingles = {" ".join(words[n:n + SHINGLE]).encode() for n in range(len(words) - SHINGLE + 1)}
    empty = hasher()
    minhash = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32, permutations=empty.permutations,
                      scheme=SCHEME)
    minhash.update_batch(list(shingles))
    return minhash.hashvalues.tobytes()


def valid_code(code: str) -> bool:
    match = CODE.fullmatch(code)
    return code.lower() == "x-default" or bool(match and match[1].lower() in LANGUAGES)


async def check_crawl(path: Path, threshold: float):
    """check() as a crawl runs it once it ends. With MinHashes to compare, in a process of its own: in the app's,
    its imports (numpy, and datasketch with scipy: seconds while their bytecode is not cached) and its loops over
    every page would hold the GIL, and with it the event loop that serves every page, for as long (a page waited
    over a second at a crawl's end). Without (near-duplicates off, or no page long enough), hreflang's few queries
    in a thread, at once."""
    if not (threshold and await asyncio.to_thread(has_minhashes, path)):
        return await asyncio.to_thread(check, path, 0)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "core.seo.validation", str(path),
                                                   str(threshold), cwd=Path(__file__).parents[2])  # the fork's root
    try:
        if await process.wait(): raise RuntimeError(f"the crawl's checks failed (exit {process.returncode})")
    finally:
        if process.returncode is None:  # cancelled: the crawl was stopped, or the app is ending
            process.kill()
            await process.wait()


def has_minhashes(path: Path) -> bool:
    db = sqlite3.connect(path, timeout=30)
    try: return db.execute("SELECT 1 FROM page WHERE minhash IS NOT NULL LIMIT 1").fetchone() is not None
    finally: db.close()


def check(path, threshold: float):
    "Once a crawl ends: its hreflang and near-duplicate verdicts, written into its file."
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        with db:
            db.execute("BEGIN")
            db.execute("UPDATE page SET hreflang_problems = NULL, near_duplicate_of = NULL, similarity = NULL")
            db.executemany("UPDATE page SET hreflang_problems = ? WHERE url = ?", hreflang_problems(db))
            if threshold: db.executemany("UPDATE page SET near_duplicate_of = (SELECT url FROM page WHERE id = ?), "
                                         "similarity = ? WHERE id = ?", near_duplicates(db, threshold))
    finally:
        db.close()


def hreflang_problems(db) -> list[tuple[str, str]]:
    "(what is wrong, URL) for each page whose hreflang annotations are wrong."
    annotated = {url: [line.split(" ", 1) for line in text.splitlines()] for url, text in
                 db.execute(f"SELECT url, hreflang FROM page WHERE {HTML_200} AND hreflang IS NOT NULL")}
    targets = {target for entries in annotated.values() for _, target in entries}
    fetched = {}
    for url, status in db.execute("SELECT url, status FROM page WHERE state = 'done'"):
        if url in targets: fetched[url] = status
    found = []
    for url, entries in annotated.items():
        problems = [f"bad code: {code}" for code, _ in entries if not valid_code(code)]
        if url not in (target for _, target in entries): problems.append("no self-reference")
        for _, target in entries:
            if target == url or target not in fetched: continue
            if fetched[target] != 200: problems.append(f"to a page answering {fetched[target] or 'nothing'}: {target}")
            elif url not in (back for _, back in annotated.get(target, [])): problems.append(
                f"no return link from {target}")
        if problems: found.append(("; ".join(problems), url))
    return found


def lsh_bands(threshold: float) -> tuple[int, int]:
    """LSH's bands and rows for the threshold, as datasketch's MinHashLSH chooses them (false positives and negatives
    weighed alike), with its integrals taken by numpy: datasketch's LSH imports scipy for them, 77 MB of memory."""
    import numpy

    def candidate(b: int, r: int, low: float, high: float) -> float:
        "The area under the chance that two pages of a similarity between low and high share a band."
        similarity = numpy.linspace(low, high, 1001)
        return float(numpy.trapezoid(1 - (1 - similarity ** r) ** b, similarity))

    def error(bands_rows: tuple[int, int]) -> float:
        "The chance of a false candidate below the threshold, and of a missed one above it, weighed alike."
        b, r = bands_rows
        return candidate(b, r, 0, threshold) + (1 - threshold) - candidate(b, r, threshold, 1)

    return min(((b, r) for b in range(1, NUM_PERM + 1) for r in range(1, NUM_PERM // b + 1)), key=error)


def near_duplicates(db, threshold: float) -> Iterator[tuple[int, float, int]]:
    """(the most similar other page's id, the similarity, page id) for each page with a near-duplicate.

    LSH as datasketch's MinHashLSH does it (lsh_bands), bounded: pages whose band of MinHash values is the same are
    candidates, and each page is compared with the NEIGHBOURS pages before and after it in each band's bucket (in the
    crawl's order), not with the whole bucket. A site of near-identical pages makes one bucket of every page: compared
    in full, 10,000 of them took 5 minutes and 100,000 would take hours; bounded, the time and the memory grow with
    the pages. Within a large cluster of near-identical pages, the one named is the most similar of its neighbours.
    Memory: each page's bands as keys, and its MinHash as b-bit minwise hashing keeps it (Li and König; datasketch's
    bBitMinHash): the lowest 8 bits of each value, 64 bytes a page where the values take 256, so a million pages
    take some 100 MB. Two values that differ agree in their low bits by chance, 1 in 256 times, which the similarity
    takes out. An iterator: a list of a million verdicts would take more memory than the MinHashes."""
    import numpy

    # LSH finds the candidates, the estimated similarity decides: above 0.95, 64 permutations leave LSH too few bands
    bands, rows = lsh_bands(min(threshold, 0.95))
    where = f"{HTML_200} AND minhash IS NOT NULL"
    count = db.execute(f"SELECT count(*) FROM page WHERE {where}").fetchone()[0]
    ids, low_bits = numpy.empty(count, numpy.int64), numpy.empty((count, NUM_PERM), numpy.uint8)
    keys = numpy.empty((bands, count), numpy.uint32)  # a band's values as one key (a collision only adds a candidate)
    mixing = numpy.random.default_rng(0).integers(1, 2 ** 63, size=rows, dtype=numpy.uint64) | 1
    found = db.execute(f"SELECT id, minhash FROM page WHERE {where} ORDER BY id")
    for start in range(0, count, CHUNK):
        chunk = found.fetchmany(CHUNK)
        hashes = numpy.frombuffer(b"".join(blob for _, blob in chunk), numpy.uint32).reshape(len(chunk), NUM_PERM)
        ids[start:start + len(chunk)] = [page for page, _ in chunk]
        low_bits[start:start + len(chunk)] = hashes.astype(numpy.uint8)
        for band in range(bands):
            mixed = (hashes[:, band * rows:(band + 1) * rows].astype(numpy.uint64) * mixing).sum(axis=1)
            keys[band, start:start + len(chunk)] = (mixed >> numpy.uint64(32)).astype(numpy.uint32)
    best, other = numpy.zeros(count, numpy.float32), numpy.full(count, -1, numpy.int64)
    for band_keys in keys:
        order = numpy.argsort(band_keys, kind="stable")
        band_keys = band_keys[order]
        for step in range(1, NEIGHBOURS + 1):
            same = band_keys[step:] == band_keys[:-step]
            lefts, rights = order[:-step][same], order[step:][same]
            for start in range(0, len(lefts), CHUNK):  # pairs in chunks: 1 MB of MinHashes at a time
                left, right = lefts[start:start + CHUNK], rights[start:start + CHUNK]
                agree = (low_bits[left] == low_bits[right]).mean(axis=1, dtype=numpy.float32)
                similarity = (agree - CHANCE) / (1 - CHANCE)
                for page, twin in ((left, right), (right, left)):  # each page appears once in each: no clashes
                    better = similarity > best[page]
                    best[page[better]], other[page[better]] = similarity[better], twin[better]
    for n in numpy.flatnonzero(best >= threshold): yield int(ids[other[n]]), round(float(best[n]), 3), int(ids[n])


NOT_OK = "(SELECT url FROM page WHERE state = 'done' AND (status >= 400 OR status IS NULL))"
CANONICAL = "canonical IS NOT NULL AND canonical != url AND canonical IN "
FINDINGS = [
    Finding("canonical_broken", "Canonical to a broken page", CANONICAL + NOT_OK, "error",
            "Search engines ignore a canonical that leads nowhere."),
    Finding("canonical_redirect", "Canonical to a redirect", f"{CANONICAL}(SELECT url FROM page WHERE {REDIRECTS})",
            "warning", "Point the canonical at where the redirect leads."),
    Finding("canonical_not_indexable", "Canonical to a page not indexable",
            f"{CANONICAL}(SELECT url FROM page WHERE {HTML_200} AND indexable = 0)", "error",
            "The page it names is noindex, or names yet another page: neither is indexed."),
    Finding("hreflang_bad_code", "hreflang with a wrong language code", "hreflang_problems LIKE '%bad code:%'",
            "error", "A code is an ISO 639-1 language, with an optional region (en-GB), or x-default."),
    Finding("hreflang_no_self", "hreflang without a self-reference", "hreflang_problems LIKE '%no self-reference%'",
            "warning", "Each page's hreflang set should name the page itself."),
    Finding("hreflang_no_return", "hreflang without a return link", "hreflang_problems LIKE '%no return link%'",
            "error", "The page named does not name this one back: search engines ignore the pair."),
    Finding("hreflang_broken", "hreflang to a redirect or a broken page", "hreflang_problems LIKE '%to a page answ%'",
            "error"),
    Finding("near_duplicate", "Near-duplicate content", "near_duplicate_of IS NOT NULL", "warning",
            "Pages this similar compete with each other: merge them, or make each one say something of its own."),
]


if __name__ == "__main__": check(sys.argv[1], float(sys.argv[2]))  # check_crawl's process
