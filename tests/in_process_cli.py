"""Run the sqlsft CLI inside the test process (fast; captured by capsys) and return its exit code."""


def cli(*args: str) -> int:
    from sqlsft.cli.app import run_app

    try:
        run_app(list(args))
    except SystemExit as exc:
        return exc.code or 0
    return 0
