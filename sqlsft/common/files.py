"""Reading and writing the JSON files that cross process boundaries: atomically, tolerant of damage."""

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_json(path: Path) -> dict:
    """The JSON object in path, or {} when it is missing, damaged or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON line (flushed, so a reader in another process sees it at once)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=str) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict]:
    """The object lines of a JSONL file; a half-written or damaged line is skipped."""
    rows: list[dict] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be written in `folder` (made if missing), or None when they can: tried for real,
    since permission bits say nothing about read-only mounts, immutable folders or root."""
    import tempfile

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
