"""The tables the commands print: terminaltables' ASCII tables, whose title is never lost.

terminaltables silently drops a title wider than its table; a machine's name (``anomaly.measuring.device_name``)
or a described dataset's name can be. Such a title goes whole on its own line above the table instead.
"""

from typing import Dict, Optional, Sequence

from terminaltables import AsciiTable
from terminaltables.width_and_alignment import visible_width


def ascii_table(rows: Sequence[Sequence[object]], title: str = "", justify: Optional[Dict[int, str]] = None) -> str:
    """``rows`` (the first is the header) as an ASCII table, ``title`` in its top border where it fits, else on the
    line above; ``justify``: column -> "left", "center" or "right"."""
    table = AsciiTable([[str(cell) for cell in row] for row in rows])
    table.justify_columns.update(justify or {})
    if visible_width(title) <= table.table_width - 2:  # what fits between the border's corners
        table.title = title or None
        return table.table
    return f"{title.strip()}\n{table.table}"
