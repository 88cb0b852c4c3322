"""Printing tables so that a pipe gets every value whole.

On a terminal a table fits the window (cells may wrap or be cut). When stdout is not a terminal (`| grep`,
a file, a script), the table is printed at its natural width instead, so no cell is cut or folded."""

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.segment import Segments

NATURAL_WIDTH_CAP = 100_000


def full_values(console: Console) -> bool:
    """True when values must be printed whole (stdout is not a terminal)."""
    return not console.is_terminal


def print_full(console: Console, *renderables: Any) -> None:
    """Print each renderable: fitted to a terminal, at its natural width when piped."""
    for renderable in renderables:
        if full_values(console):
            wide = console.options.update_width(NATURAL_WIDTH_CAP)
            natural = max(console.width, Measurement.get(console, wide, renderable).maximum)
            # rendered at that width and written uncropped (Console.print never goes wider than the console)
            segments = list(console.render(renderable, console.options.update_width(natural)))
            console.print(Segments(segments), crop=False)
        else:
            console.print(renderable)


def titled(title: str, renderable: Any) -> Group:
    """A title on a line of its own above a table (a table's own title is wrapped to the table's width)."""
    return Group(f"[bold]{escape(title)}[/]", renderable)
