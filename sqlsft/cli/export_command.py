"""`sqlsft export MODEL --format gguf --quant Q`: a GGUF for llama.cpp, Ollama and the browser, checked and evaluated;
`--format web`: a static page that runs that GGUF and the answer's SQL in the browser."""

import importlib.util

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.export.export_model import DEFAULT_EVAL_ROWS
from sqlsft.export.gguf import QUANTS

FORMATS = ("gguf", "web")


@app.command("export")
def export_command(
    model: str = typer.Argument(
        "latest",
        help="`latest` (newest completed run), a run name, a model or checkpoint folder, or `embedded`.",
    ),
    export_format: str = typer.Option(
        "gguf", "--format", help="gguf, or web: a static page that runs the model in the browser."
    ),
    quant: str = typer.Option(
        None,
        "--quant",
        help=f"Quantization: {', '.join(QUANTS)} (default: q8_0; q4_k_m for web).",
        show_default=False,
    ),
    evaluate: bool = typer.Option(
        True, "--eval/--no-eval", help="Execution accuracy of the original and of the file, side by side."
    ),
    eval_rows: int = typer.Option(DEFAULT_EVAL_ROWS, "--eval-rows", help="Test rows both are evaluated on."),
    original_engine: str = typer.Option(
        None,
        "--original-engine",
        help="Engine that evaluates the original model: vllm or transformers (default: vLLM when installed).",
    ),
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
    if quant is not None and quant not in QUANTS:
        raise SqlsftError(f"Unknown quantization '{quant}'.", f"Use one of: {', '.join(QUANTS)}.")
    if export_format == "web":
        _export_web(model, quant, dry_run)
        return
    quant = quant or "q8_0"
    if is_gguf_file(model):
        raise SqlsftError(
            f"{model} is already a GGUF file.", "Serve it: sqlsft serve FILE.gguf --engine llama.cpp."
        )
    if original_engine not in (None, "vllm", "transformers"):
        raise SqlsftError(
            f"--original-engine {original_engine}: the original model is served by vllm or transformers."
        )
    if threads is not None and threads < 1:
        raise SqlsftError(f"--threads {threads} must be 1 or more.")
    folder, label = resolve_model_folder(model, err_console)
    if not dry_run and importlib.util.find_spec("llama_cpp") is None:
        raise SqlsftError(
            "GGUF export needs llama-cpp-python (llama.cpp's quantizer and the parity checks), which is not installed.",
            "Install it with `bash scripts/setup.sh --llama` (or `uv sync --extra llama`).",
        )
    if dry_run:
        target, plan, vocab_command = plan_model_export(folder, quant, threads)
        print_export_plan(label, target, plan, vocab_command, console)
        return
    err_console.print(f"Exporting {label} to GGUF ({quant})", markup=False, highlight=False, soft_wrap=True)
    outcome = export_model(
        folder,
        quant,
        console=err_console,
        evaluate=evaluate,
        eval_rows=eval_rows,
        threads=threads,
        original_engine_name=original_engine,
    )
    print_export(label, outcome, console, err_console)


def _export_web(model: str, quant: str | None, dry_run: bool) -> None:
    from rich.markup import escape

    from sqlsft.common.processes import shell_line
    from sqlsft.export.web.export_web import WEB_QUANT, export_web
    from sqlsft.export.web.runtime import install_command, runtime_dir

    if dry_run:  # the one command the web export adds to the GGUF export's (see `--format gguf --dry-run`)
        console.print(
            f"$ {shell_line(install_command(runtime_dir()))}", markup=False, highlight=False, soft_wrap=True
        )
        return
    err_console.print(f"Exporting {model} as a web page", markup=False, highlight=False, soft_wrap=True)
    done = export_web(
        model,
        quant or WEB_QUANT,
        console=err_console,
        log=lambda line: err_console.print(line, markup=False, highlight=False, soft_wrap=True),
    )
    page = done.page
    how = "linked" if page.linked else "copied"
    console.print(f"Web page: [bold]{escape(str(page.folder))}[/]", soft_wrap=True, highlight=False)
    console.print(
        f"  model {escape(done.served.label)} ({how} as model.gguf), examples from {escape(done.examples_from)}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"  open it: sqlsft chat --web {escape(model)}", soft_wrap=True, highlight=False)
