"""`sqlsft export MODEL --format gguf --quant Q`: a GGUF for llama.cpp, Ollama and the browser, checked and evaluated."""

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.export.export_model import DEFAULT_EVAL_ROWS
from sqlsft.export.gguf import QUANTS

FORMATS = ("gguf",)


@app.command("export")
def export_command(
    model: str = typer.Argument(
        "latest",
        help="`latest` (newest completed run), a run name, a model or checkpoint folder, or `embedded`.",
    ),
    export_format: str = typer.Option("gguf", "--format", help="Output format: gguf."),
    quant: str = typer.Option("q8_0", "--quant", help=f"Quantization: {', '.join(QUANTS)}."),
    evaluate: bool = typer.Option(
        True, "--eval/--no-eval", help="Execution accuracy of the original and of the file, side by side."
    ),
    eval_rows: int = typer.Option(DEFAULT_EVAL_ROWS, "--eval-rows", help="Test rows both are evaluated on."),
    threads: int = typer.Option(
        None, "--threads", help="CPU threads for quantizing and checking (default: all)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands the export runs; run nothing."),
) -> None:
    """Export a model as a GGUF (llama.cpp's own converter and quantizer), verified against the original:
    chat template, token ids, end-of-turn stop and greedy generations, then execution accuracy of both."""
    from sqlsft.cli.views.export import print_export, print_export_plan
    from sqlsft.common.errors import SqlsftError
    from sqlsft.export.export_model import export_model, plan_model_export
    from sqlsft.export.served import is_gguf_file
    from sqlsft.models.resolve import resolve_model_folder

    if export_format not in FORMATS:
        raise SqlsftError(f"Unknown export format '{export_format}'.", f"Use one of: {', '.join(FORMATS)}.")
    if quant not in QUANTS:
        raise SqlsftError(f"Unknown quantization '{quant}'.", f"Use one of: {', '.join(QUANTS)}.")
    if is_gguf_file(model):
        raise SqlsftError(
            f"{model} is already a GGUF file.", "Serve it: sqlsft serve FILE.gguf --engine llama.cpp."
        )
    if threads is not None and threads < 1:
        raise SqlsftError(f"--threads {threads} must be 1 or more.")
    folder, label = resolve_model_folder(model, err_console)
    if dry_run:
        target, plan, vocab_command = plan_model_export(folder, quant, threads)
        print_export_plan(label, target, plan, vocab_command, console)
        return
    err_console.print(f"Exporting {label} to GGUF ({quant})", markup=False, highlight=False, soft_wrap=True)
    outcome = export_model(
        folder, quant, console=err_console, evaluate=evaluate, eval_rows=eval_rows, threads=threads
    )
    print_export(label, outcome, console, err_console)
