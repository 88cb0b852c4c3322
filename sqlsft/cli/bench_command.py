"""`sqlsft bench ...`: one sub-app; each stage's command module adds its own benchmark to it."""

import typer

from sqlsft.cli.app import app

bench_app = typer.Typer(help="Benchmarks that print figures: prepare, train, serve.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
