"""The page's WebAssembly runtimes: npm packages at pinned versions, installed once into sqlsft's cache.

The one subprocess here is `npm install --prefix CACHE/web-runtime/<key> ...` (printed before it runs).
`--prefer-offline` lets a second install (a new cache folder, the tests' isolated cache) come from npm's
own cache without the network. Only the files listed in RUNTIME_FILES travel into an exported page.
"""

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir
from sqlsft.common.processes import shell_line

# llama.cpp in WebAssembly, SQLite in WebAssembly, CPython in WebAssembly (for the prompt code).
NPM_PACKAGES = {
    "@wllama/wllama": "3.13.0",
    "sql.js": "1.17.0",
    "pyodide": "314.0.7",
}
# page path (under runtime/) -> path inside node_modules
RUNTIME_FILES = {
    "wllama/index.js": "@wllama/wllama/esm/index.js",
    "wllama/wllama.wasm": "@wllama/wllama/esm/wasm/wllama.wasm",
    "wllama/LICENCE": "@wllama/wllama/LICENCE",
    "sqljs/sql-wasm.js": "sql.js/dist/sql-wasm.js",
    "sqljs/sql-wasm.wasm": "sql.js/dist/sql-wasm.wasm",
    "sqljs/LICENSE": "sql.js/LICENSE",
    "pyodide/pyodide.mjs": "pyodide/pyodide.mjs",
    "pyodide/pyodide.asm.mjs": "pyodide/pyodide.asm.mjs",
    "pyodide/pyodide.asm.wasm": "pyodide/pyodide.asm.wasm",
    "pyodide/python_stdlib.zip": "pyodide/python_stdlib.zip",
    "pyodide/pyodide-lock.json": "pyodide/pyodide-lock.json",
}
DONE_MARKER = ".installed"


def package_specs() -> list[str]:
    return [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]


def runtime_dir() -> Path:
    """Where the pinned packages are installed: one folder per set of pins."""
    key = hashlib.sha256(" ".join(package_specs()).encode()).hexdigest()[:10]
    return cache_dir() / "web-runtime" / key


def install_command(prefix: Path) -> list[str]:
    npm = shutil.which("npm") or "npm"
    return [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--ignore-scripts",
        "--prefer-offline",
        "--loglevel=error",
        *package_specs(),
    ]


def installed_runtime() -> Path | None:
    """node_modules of the pinned packages when they are installed, else None."""
    folder = runtime_dir()
    modules = folder / "node_modules"
    if (folder / DONE_MARKER).is_file() and all((modules / f).is_file() for f in RUNTIME_FILES.values()):
        return modules
    return None


def ensure_runtime(log: Callable[[str], None] = lambda line: None) -> Path:
    """node_modules with every file of RUNTIME_FILES, installed now (under a lock) if it is missing."""
    found = installed_runtime()
    if found is not None:
        return found
    from filelock import FileLock

    folder = runtime_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        found = installed_runtime()
        if found is not None:
            return found
        command = install_command(folder)
        if shutil.which(command[0]) is None:
            raise SqlsftError(
                "npm is not installed: the page's runtimes (wllama, sql.js, Pyodide) come from npm.",
                "Install Node.js 18 or newer, or run: bash scripts/setup.sh --web",
            )
        log(f"$ {shell_line(command)}")
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SqlsftError(
                f"npm install of the page's runtimes failed (exit {done.returncode}): {last[0]}",
                "Check the network to the npm registry, or run: bash scripts/setup.sh --web",
            )
        modules = folder / "node_modules"
        missing = [f for f in RUNTIME_FILES.values() if not (modules / f).is_file()]
        if missing:
            raise SqlsftError(f"npm installed the runtimes without {', '.join(missing)}.")
        (folder / DONE_MARKER).write_text(" ".join(package_specs()) + "\n", encoding="utf-8")
        return modules


def copy_runtime(destination: Path, log: Callable[[str], None] = lambda line: None) -> list[Path]:
    """The runtime files into `destination` (the page's runtime/ folder)."""
    modules = ensure_runtime(log)
    written = []
    for target, source in RUNTIME_FILES.items():
        path = destination / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(modules / source, path)
        written.append(path)
    return written
