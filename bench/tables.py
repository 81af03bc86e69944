"""The one table printer of the bench scripts: markdown for docs/README, aligned text otherwise."""

from __future__ import annotations


def print_table(headers: list[str], rows: list[list[str]], markdown: bool, *, title: str = "", align: str = "left") -> None:
    """Print `rows` under `headers`; `title` (if any) goes above, bold in markdown.
    `align` is "left" or "right" for the text form (numbers read better right-aligned)."""
    if markdown:
        if title:
            print(f"\n**{title}**\n")
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    if title:
        print(f"\n{title}")
    for row in [headers, *rows]:
        cells = (str(x).rjust(w) if align == "right" else str(x).ljust(w) for x, w in zip(row, widths))
        print("  ".join(cells))
