"""Assemble BENCHMARKS.md from the per-part figures in docs/bench/*.md (run from the repo root:
``python docs/bench/make_benchmarks.py``). Each part's page holds its own measured figures and
the command that reproduces them; this file only puts them in one place, in a fixed order."""

from __future__ import annotations

from pathlib import Path

ORDER = ["import", "generator", "audit", "ingest", "access", "detection", "leaks", "incidents",
         "web", "gateway", "backup"]
HEAD = """# Benchmarks

Every figure below was measured on this project's development machine — 2 cores, 24 GiB,
shared with other work while it ran, so medians and ratios to the anchor measured **in the same
run** are what to compare, not absolute numbers. `make bench` runs every benchmark at its quick
size; `BENCH_SCALE=full` runs the issue-size ones. Each section names its own command.

"""


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    pages = {p.stem: p for p in (root / "docs" / "bench").glob("*.md")}
    parts = [HEAD]
    for name in ORDER + sorted(set(pages) - set(ORDER)):
        page = pages.get(name)
        if page is None:
            continue
        text = page.read_text().strip()
        # demote the page's headings one level so they nest under this document's title
        lines, fenced = [], False
        for ln in text.splitlines():
            if ln.startswith("```"):
                fenced = not fenced
            lines.append("#" + ln if ln.startswith("#") and not fenced else ln)
        parts.append("\n".join(lines) + "\n")
    (root / "BENCHMARKS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
