"""What the train stage tells its user while it works, as calls on a view object.

This base shows nothing (bench uses it, with a console that collects what prepare prints); the command
line's view (sqlsft.cli.views.train) draws a progress bar or plain lines.
"""

import io

from rich.console import Console

from sqlsft.runs.metrics import MetricsRow


class TrainView:
    def __init__(self, console: Console | None = None):
        # Where the stages train runs in this process (prepare, the embedded model's conversion) print.
        self.console = console or Console(file=io.StringIO())

    def note(self, text: str, warning: bool = False) -> None:
        """A line worth reading before or during the run."""

    def launching(self, headline: str, command: list[str]) -> None:
        """The run starts: what it is, and the exact command (also saved in the run folder)."""

    def progress_started(self, start_step: int) -> None:
        """The launcher runs; metrics lines follow through progress()."""

    def progress(self, rows: list[MetricsRow]) -> None:
        """Lines just appended to the run's metrics.jsonl (steps and events)."""

    def progress_stopped(self) -> None:
        """The training processes are gone."""
