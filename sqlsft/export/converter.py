"""llama.cpp's converter (`convert_hf_to_gguf.py` with its `conversion/` and `gguf-py/`), pinned: the wheel
of llama-cpp-python does not ship it, its source package vendors it, so it is unpacked once from `pip
download` of that exact version into the cache."""

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir
from sqlsft.common.processes import shell_line

LLAMA_CPP_PYTHON = "llama-cpp-python"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# What sqlsft takes from the source package (paths under its vendor/llama.cpp/).
CONVERTER_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
CONVERTER_SCRIPT = "convert_hf_to_gguf.py"


def converter_dir() -> Path:
    """llama.cpp's converter as vendored by llama-cpp-python LLAMA_CPP_PYTHON_VERSION, under the cache."""
    return cache_dir() / "llama.cpp" / f"convert-{LLAMA_CPP_PYTHON_VERSION}"


def converter_ready(folder: Path | None = None) -> bool:
    folder = folder or converter_dir()
    return (folder / CONVERTER_SCRIPT).is_file() and (folder / "gguf-py" / "gguf" / "__init__.py").is_file()


def download_command(download_dir: Path) -> list[str]:
    """pip's download of the pinned source package (the only place llama.cpp's converter ships)."""
    return [
        *_pip(),
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--dest",
        str(download_dir),
        f"{LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION}",
    ]


def _pip() -> list[str]:
    """This Python's pip, else uv's (a uv-made environment has no pip)."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "tool", "run", "--from", "pip", "pip"]
    raise SqlsftError(
        "Fetching llama.cpp's converter needs pip or uv, and neither is here.",
        "Install uv (`pip install uv`).",
    )


def fetch_converter(sdist: Path | None = None, log=print) -> Path:
    """Unpack the converter from the pinned source package (downloaded unless `sdist` is given), once."""
    from filelock import FileLock

    target = converter_dir()
    if converter_ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        FileLock(str(target) + ".lock"),
        tempfile.TemporaryDirectory(prefix="sqlsft-llama-src-", dir=target.parent) as tmp,
    ):
        if converter_ready(target):  # another export unpacked it while this one waited
            return target
        if sdist is None:
            command = download_command(Path(tmp))
            log(f"Fetching llama.cpp's converter once: {shell_line(command)}")
            done = subprocess.run(command, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if done.returncode != 0 or not found:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no source package"]
                raise SqlsftError(
                    f"Downloading {LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION} (source) failed: {last[0]}",
                    f"Check the network to PyPI, or download it by hand and pass it: {shell_line(command)}",
                )
            sdist = found[0]
        _unpack_converter(Path(sdist), Path(tmp) / "convert")
        shutil.rmtree(target, ignore_errors=True)
        (Path(tmp) / "convert").rename(target)
    return target


def _unpack_converter(sdist: Path, out: Path) -> None:
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            members = []
            for member in archive.getmembers():
                relative = member.name[len(prefix) :] if member.name.startswith(prefix) else None
                if relative and any(relative == m or relative.startswith(m) for m in CONVERTER_MEMBERS):
                    member.name = relative
                    members.append(member)
            archive.extractall(out, members=members, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise SqlsftError(f"{sdist} is not a readable {LLAMA_CPP_PYTHON} source package: {exc}") from None
    if not converter_ready(out):
        raise SqlsftError(
            f"{sdist} holds no llama.cpp converter (expected {prefix}{CONVERTER_SCRIPT}).",
            f"Use the source package of {LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION}.",
        )
