"""`sqlsft runs`: the run registry as a table, or JSON."""

import json

import typer

from sqlsft.cli.app import app, console


@app.command("runs")
def runs_command(
    limit: int = typer.Option(20, "--limit", "-n", help="Show at most this many runs (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON (every field, no table)."),
) -> None:
    """List training runs: preset, model, GPUs, steps, final loss, duration, status, the best execution
    accuracy during training (`RUN:best` serves that checkpoint) and the latest `sqlsft eval` accuracy."""
    from sqlsft.cli.views.runs import print_runs, run_record
    from sqlsft.common.errors import SqlsftError
    from sqlsft.common.paths import runs_dir
    from sqlsft.runs.registry import list_runs

    if limit < 1:
        raise SqlsftError(f"--limit {limit}: show at least 1 run.", "Leave --limit out to see the newest 20.")
    found = list_runs()[:limit]
    if as_json:
        typer.echo(json.dumps([run_record(run) for run in found], indent=2))
        return
    if not found:
        console.print(f"No runs in {runs_dir()}. Train one with `sqlsft train --preset demo`.", markup=False)
        return
    print_runs(found, runs_dir(), console)
