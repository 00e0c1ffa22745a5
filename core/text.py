"""User-supplied text made inert where it would otherwise be read as code: Markdown (captions, labels,
toasts, image captions on the pages) and spreadsheet cells (every CSV the app and the CLI write).

One escaping helper per target: `plain` for Markdown (the pages use it as `ui.widgets.plain`), `csv_cell`
for a CSV cell (`csv_text` for a whole table, `csv_value` to read an escaped cell back). Pure Python, so
`core/` and `ui/` share it.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# What makes links, images, emphasis, code, HTML, LaTeX, tables and Streamlit's :directives:. '.' '-' '#' '+'
# matter only at a line's start (a list or a heading): a change of look, never a way out.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()!|<>~$:&])")
# A spreadsheet runs a cell starting with one of these as a formula (OWASP's CSV injection list); a cell
# starting with the quote that defuses them is quoted too, so that every escaped cell reads back exactly.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# CRLF ends a row (RFC 4180): Python's csv quotes any cell holding a character of the line ending, so a
# carriage return inside a name cannot start a row of its own in a spreadsheet.
CSV_LINE_END = "\r\n"


def plain(text: object) -> str:
    """User-supplied text (file and folder names, class names, URL parameters, messages quoting them) for
    a Markdown element, escaped so that a crafted name shows as itself, never as a link, formatting, or
    an image fetched from elsewhere."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (starting with = + - @, tab or carriage return),
    prefixed with a single quote; numbers, and text that is only a number ("-0.5"), as they are."""
    armed = isinstance(value, str) and value.startswith((*_FORMULA_START, _QUOTE))
    if armed and not _NUMBER.fullmatch(value):
        return _QUOTE + value
    return value


def csv_value(cell: str) -> str:
    """A cell as `csv_cell` wrote it, read back; a cell without its quote (a CSV written by hand) as it is."""
    if cell.startswith(_QUOTE) and cell[1:].startswith((*_FORMULA_START, _QUOTE)):
        return cell[1:]
    return cell


def csv_text(frame: pd.DataFrame, index: bool = False) -> str:
    """The table as CSV with every text cell, column name and index label through `csv_cell`."""
    safe = frame.map(csv_cell)
    safe.columns = safe.columns.map(csv_cell)
    if index:
        safe.index = safe.index.map(csv_cell)
        safe.index.names = [csv_cell(n) for n in safe.index.names]
    return safe.to_csv(index=index, lineterminator=CSV_LINE_END)
