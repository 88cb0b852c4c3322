"""What `sqlsft export` shows: the plan (`--dry-run`), then the file, its checks and both scores."""

from rich.console import Console
from rich.table import Table

from sqlsft.cli.views.output import print_full
from sqlsft.common.processes import shell_line
from sqlsft.export.export_model import ExportOutcome


def print_export_plan(label: str, target, plan, vocab_command: list[str] | None, console: Console) -> None:
    console.print(f"export {label} -> {plan.output}", markup=False, highlight=False, soft_wrap=True)
    if vocab_command:
        console.print(shell_line(vocab_command), markup=False, highlight=False, soft_wrap=True)
    for line in plan.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_export(label: str, outcome: ExportOutcome, console: Console, err_console: Console) -> None:
    table = Table(title=f"export of {label}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("file", str(outcome.file))
    table.add_row("size", f"{outcome.file.stat().st_size / 1e6:.0f} MB ({outcome.quant})")
    table.add_row("seconds", ", ".join(f"{step} {s:.1f}" for step, s in outcome.seconds.items()))
    greedy, tokens = outcome.parity[0], outcome.parity[-1]
    table.add_row(
        "checked",
        f"template, token ids and end-of-turn stop on {len(tokens.prompts)} test prompts; greedy "
        f"{greedy.generation_tokens} tokens on {len(greedy.prompts)} prompts (f16): identical",
    )
    if outcome.eval_rows:
        loss = outcome.score_loss_points
        table.add_row(
            "execution accuracy",
            f"original {_score(outcome.original_score)}, this file {_score(outcome.export_score)} "
            f"on {outcome.eval_rows} test rows"
            + (f" ({0.0 - loss:+.1f} points)" if loss is not None else ""),
        )
    else:
        table.add_row("execution accuracy", "not measured (--no-eval)")
    table.add_row("next to it", ", ".join(p.name for p in outcome.texts) + ", export.json")
    print_full(console, table)
    for warning in outcome.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    console.print(
        f"Serve it: sqlsft serve {outcome.file} --engine llama.cpp --detach",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
