"""What `sqlsft serve`, `sqlsft server status` and `sqlsft engines install` show: the dry-run plan, the
start-up (a spinner with the engine's last log lines on a terminal), the ready table, the server list."""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sqlsft.cli.views.output import full_values, print_full
from sqlsft.common.formatting import duration
from sqlsft.common.paths import runs_dir
from sqlsft.serve.install import InstallPlan
from sqlsft.serve.manage import ServerStatus
from sqlsft.serve.plan import ServerPlan
from sqlsft.serve.progress import ConsoleProgress, Tick, engine_label
from sqlsft.serve.registry import Health, ServerRecord


class ServeView(ConsoleProgress):
    """`sqlsft serve`: ConsoleProgress's lines, a live spinner while the engine starts, a table once ready."""

    @contextlib.contextmanager
    def waiting(self, plan: ServerPlan, log_file: str) -> Iterator[Tick]:
        label = engine_label(plan)
        self.say(f"waiting for {label} to answer /health (log: {log_file})")
        if not self.console.is_terminal:
            yield lambda elapsed, last_lines: None
            return
        with self.console.status(f"starting {label}") as spinner:

            def tick(elapsed: float, last_lines: list[str]) -> None:
                width = max(20, self.console.width - 4)
                tail = "\n".join(f"  [dim]{escape(row[:width])}[/]" for row in last_lines)
                spinner.update(f"starting {escape(label)} ({elapsed:.0f} s)\n{tail}")

            yield tick

    def ready(self, record: ServerRecord, detached: bool) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        table.add_row("base URL", record.url)
        table.add_row("model", escape(record.model_name))
        table.add_row("engine", f"{record.engine} (pid {record.pid})")
        table.add_row(
            "API key", "required (the one you passed)" if record.api_key else "none (clients send EMPTY)"
        )
        table.add_row("try", escape(curl_example(record)))
        if detached:
            table.add_row("runs", escape(f"in the background; log: {record.log_file}"))
            table.add_row("stop", f"sqlsft server stop --port {record.port}")
        else:
            table.add_row("stop", "Ctrl-C")
        self.console.print(
            f"[bold green]Serving {escape(record.model_name)}[/] from {escape(record.model)}", highlight=False
        )
        print_full(self.console, table)


def curl_example(record: ServerRecord) -> str:
    body = json.dumps(
        {"model": record.model_name, "messages": [{"role": "user", "content": "How many rows?"}]}
    )
    auth = ' -H "Authorization: Bearer $API_KEY"' if record.api_key else ""
    return f"curl {record.url}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"


def print_dry_run(plan: ServerPlan, console: Console) -> None:
    """The plan of `sqlsft serve --dry-run`: the command line alone on stdout's last line but one."""
    view = ConsoleProgress(console)
    view.say(f"engine: {plan.choice.name} ({plan.choice.reason})")
    view.say(f"model:  {plan.model.describe()}")
    for text in plan.model.warnings:
        view.warn(text)
    for note in plan.launch.notes:
        view.say(note, "dim")
    view.say(f"cwd:    {plan.launch.cwd}")
    shown_env = {k: ("***" if "KEY" in k else v) for k, v in plan.launch.env.items()}
    view.say("env:    " + " ".join(f"{k}={v}" for k, v in shown_env.items()))
    print(plan.launch_line())
    console.print("[dim](dry run: nothing started)[/]")


def print_statuses(statuses: list[ServerStatus], console: Console, as_json: bool = False) -> None:
    """The live servers: a table (every value whole when piped), or JSON."""
    if as_json:
        print(json.dumps([status.to_json() for status in statuses], indent=2))
        return
    if not statuses:
        console.print(
            "No sqlsft server is running. Start one with `sqlsft serve` (add --detach to background it).",
            soft_wrap=True,
        )
        return
    table = Table(title="sqlsft servers")
    table.add_column("URL", overflow="fold", min_width=12)
    for column in ("name", "engine", "health", "up", "pid", "key"):
        table.add_column(column, no_wrap=True)
    table.add_column("model", overflow="fold")
    for status in statuses:
        record = status.record
        style = "green" if status.health.state is Health.HEALTHY else "yellow"
        table.add_row(
            record.url,
            escape(record.model_name),
            record.engine,
            f"[{style}]{status.health}[/]",
            duration(record.uptime_s),
            str(record.pid),
            "yes" if record.api_key_set else "no",
            escape(record.model if full_values(console) else short_model(record.model)),
        )
    print_full(console, table)


def short_model(model: str) -> str:
    """The run name for a run's model folder, else the folder's last two parts."""
    path = Path(model)
    if path.name == "model" and path.parent.parent == runs_dir().resolve():
        return path.parent.name
    return str(Path(*path.parts[-2:])) if len(path.parts) > 2 else model


def print_install_plan(plan: InstallPlan, console: Console) -> None:
    if not plan.steps:
        console.print(
            f"{plan.spec.description} is ready at {plan.venv}", markup=False, highlight=False, soft_wrap=True
        )
        return
    console.print(
        f"making {plan.spec.description} at {plan.venv}", markup=False, highlight=False, soft_wrap=True
    )
    if plan.fresh:
        console.print("(the environment there is removed first: another build, or it no longer runs)")
    for line in plan.lines():
        console.print(f"$ {line}", markup=False, highlight=False, soft_wrap=True)
