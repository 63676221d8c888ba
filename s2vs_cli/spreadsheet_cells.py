"""Text cells of the CSV and TSV files s2vs writes, safe to open in a spreadsheet and read back exactly.

A spreadsheet runs a cell beginning with `=`, `+`, `-` or `@` (or a tab or carriage return) as a formula:
an id such as `=HYPERLINK(...)` would act when the file is opened (CSV injection). As OWASP advises, such a
cell is written with a single quote in front, which spreadsheets show as text. A cell that itself begins
with a quote gets one more, so reading strips exactly one leading quote and every id comes back as it was.
Only text cells go through this: numbers (a score of -0.5) are written as numbers.
"""
from __future__ import annotations

QUOTE = "'"
# OWASP's list of the characters that make a spreadsheet read a cell as a formula, and the quote itself.
_ESCAPED_FIRST = ("=", "+", "-", "@", "\t", "\r", QUOTE)


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text: a quote in front when it could start a formula."""
    return QUOTE + text if text.startswith(_ESCAPED_FIRST) else text


def from_spreadsheet_safe(cell: str) -> str:
    """The text a `spreadsheet_safe` cell was made from (one leading quote removed)."""
    return cell[1:] if cell.startswith(QUOTE) else cell
