"""The Python the page runs in Pyodide, as one zip: sqlsft's own prompt and SQL-reading modules (the very
files training and `sqlsft chat` use) and the pure-Python packages they import, taken from this
environment (the same versions, so the same output). Nothing is fetched: Pyodide unpacks the zip.
"""

import importlib.util
import zipfile
from pathlib import Path

import sqlsft

# The modules in_browser.py imports, directly or not; each must import nothing beyond this list and the
# standard library (test_web_page checks by importing in_browser in Pyodide).
SQLSFT_MODULES = (
    "__init__.py",
    "common/__init__.py",
    "common/errors.py",
    "common/paths.py",
    "data/__init__.py",
    "data/options.py",
    "data/prompts.py",
    "sql/__init__.py",
    "sql/statements.py",
    "chat/__init__.py",
    "chat/turns.py",
    "export/__init__.py",
    "export/web/__init__.py",
    "export/web/in_browser.py",
)
# Pure-Python packages (markupsafe without its C speed-up: it falls back to its own Python code).
PACKAGES = ("sqlparse", "jinja2", "markupsafe")
BUNDLE_FILE = "python.zip"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def write_bundle(path: Path) -> Path:
    """Write the zip (entries in a fixed order with a fixed date, so the same sources give the same bytes)."""
    sqlsft_dir = Path(sqlsft.__file__).resolve().parent
    entries: list[tuple[str, Path]] = [(f"sqlsft/{m}", sqlsft_dir / m) for m in SQLSFT_MODULES]
    for name in PACKAGES:
        folder = _package_dir(name)
        entries += [(f"{name}/{p.relative_to(folder).as_posix()}", p) for p in sorted(folder.rglob("*.py"))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, source in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, source.read_bytes())
    return path
