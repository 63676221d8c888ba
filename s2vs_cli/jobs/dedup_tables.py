"""`s2vs dedup --csv DIR`: the result as two spreadsheet tables, pairs.csv and groups.csv.

pairs.csv has a row a pair (most similar first) with its first (best) copied part's times and a person's
decision (copy, or empty); groups.csv a row a member of each group, the keeper flagged, with its facts. Text cells
are spreadsheet-safe (spreadsheet_cells.py: an id starting with `=` cannot run as a formula, and reads back
exactly); numbers are written in full (repr), so reading gives the same floats; an empty cell is a value not
known. Each file is written whole or not at all.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..atomic import OutputWriteError, atomic_write
from ..errors import S2VSError
from ..scoring.duplicate_groups import PairMatch
from ..spreadsheet_cells import spreadsheet_safe
from .dedup import FACT_KEYS, DedupResult

PAIR_COLUMNS = ("a", "b", "similarity", "relation", "container", "coverage_a", "coverage_b", "matches",
                "a_start", "a_end", "b_start", "b_end", "match_score", "verdict", "decision")
GROUP_COLUMNS = ("group", "id", "keep", *FACT_KEYS, "facts_from")


def _cell(value: object) -> str:
    """One CSV cell: text made spreadsheet-safe, numbers in full, flags as 1/0, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return spreadsheet_safe(str(value))


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    try:
        with atomic_write(path, "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(header)
            table.writerows([_cell(value) for value in row] for row in rows)
    except OutputWriteError as e:
        raise S2VSError(f"{path}: cannot write the table ({e.reason})") from None


def write_dedup_tables(result: DedupResult, folder: str | Path) -> list[Path]:
    """Write pairs.csv and groups.csv into `folder` (made when missing); their paths."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise S2VSError(f"{folder}: cannot make the folder ({e.strerror or e})") from None
    pairs = []
    for pair in result.pairs:  # a pair marked copy may have no copied part: its cells for one are empty
        first = pair.matches[0] if pair.matches else PairMatch(None, None, None, None, None)
        pairs.append((pair.a, pair.b, pair.similarity, pair.relation, pair.container, *pair.coverage,
                      len(pair.matches), first.a_start, first.a_end, first.b_start, first.b_end, first.score,
                      pair.verdict, pair.decision))
    members = [(number, member, member == group.keep, *(group.facts.get(member, {}).get(key) for key in FACT_KEYS),
                group.facts.get(member, {}).get("from"))
               for number, group in enumerate(result.groups) for member in group.members]
    written = [folder / "pairs.csv", folder / "groups.csv"]
    _write(written[0], PAIR_COLUMNS, pairs)
    _write(written[1], GROUP_COLUMNS, members)
    return written
