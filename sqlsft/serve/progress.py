"""What the serve stage reports while a server starts, runs and stops.

The stage calls these hooks and never draws anything itself: `StartupProgress` reports nothing (for
callers that only want the server), `ConsoleProgress` writes plain lines to a console (for stages such
as eval and bench that start a server on the side), and `sqlsft/cli/views/serve.py` draws the full view
(spinner with the engine's last log lines, the ready table) for `sqlsft serve`.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from sqlsft.serve.plan import ServerPlan
    from sqlsft.serve.registry import ServerRecord

Tick = Callable[[float, list[str]], None]  # (seconds waited, the engine log's last lines)


class StartupProgress:
    def warn(self, text: str) -> None: ...

    def planned(self, plan: "ServerPlan") -> None: ...

    @contextlib.contextmanager
    def waiting(self, plan: "ServerPlan", log_file: str) -> Iterator[Tick]:
        yield lambda elapsed, last_lines: None

    def healthy(self, plan: "ServerPlan", elapsed_s: float) -> None: ...

    def log_lines(self, lines: list[str]) -> None:
        """The last lines of an engine that stopped on its own."""

    def ready(self, record: "ServerRecord", detached: bool) -> None: ...

    def stopping(self, record: "ServerRecord") -> None: ...

    def stopped(self, record: "ServerRecord") -> None: ...

    def cancelled(self) -> None:
        """Interrupted during start-up: nothing was left running."""


def engine_label(plan: "ServerPlan") -> str:
    return f"{plan.choice.name} on port {plan.port}"


class ConsoleProgress(StartupProgress):
    """Plain lines on a Rich console; warnings always go to stderr."""

    def __init__(self, console) -> None:
        self.console = console

    def say(self, text: str, style: str = "") -> None:
        self.console.print(
            f"[{style}]{escape(text)}[/]" if style else escape(text), highlight=False, soft_wrap=True
        )

    def warn(self, text: str) -> None:
        from rich.console import Console

        console = self.console if self.console.stderr else Console(stderr=True)
        console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    def planned(self, plan: "ServerPlan") -> None:
        self.console.print(
            f"[bold]engine[/] {plan.choice.name} ({escape(plan.choice.reason)})", highlight=False
        )
        self.console.print(f"[bold]model[/]  {escape(plan.model.describe())}", highlight=False)
        for note in plan.launch.notes:
            self.say(note, "dim")
        self.say("$ " + plan.launch_line(), "dim")

    @contextlib.contextmanager
    def waiting(self, plan: "ServerPlan", log_file: str) -> Iterator[Tick]:
        self.say(f"waiting for {engine_label(plan)} to answer /health (log: {log_file})")
        yield lambda elapsed, last_lines: None

    def healthy(self, plan: "ServerPlan", elapsed_s: float) -> None:
        self.say(f"{engine_label(plan)} is healthy after {elapsed_s:.0f} s")

    def log_lines(self, lines: list[str]) -> None:
        if lines:
            self.say("\n".join(lines), "dim")

    def ready(self, record: "ServerRecord", detached: bool) -> None:
        self.say(f"serving {record.model_name} at {record.url}")

    def stopping(self, record: "ServerRecord") -> None:
        self.say(f"stopping the server on port {record.port} ...")

    def stopped(self, record: "ServerRecord") -> None:
        self.say("stopped.")

    def cancelled(self) -> None:
        self.say("interrupted: start-up cancelled, nothing left running.")
