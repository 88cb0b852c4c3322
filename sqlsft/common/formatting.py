"""Small formatting and statistics helpers every stage shares (each exists only here)."""

import math
from collections.abc import Sequence


def duration(seconds: float | None) -> str:
    """A duration as people read it: `42s`, `3m07s`, `1h05m`; `-` when unknown."""
    if not isinstance(seconds, int | float) or math.isnan(seconds):
        return "-"
    total = round(max(seconds, 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def clock(seconds: float) -> str:
    """Elapsed time as a clock (`4:31`, `1:02:03`), for progress lines."""
    total = int(max(seconds, 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolation percentile (numpy's default): p50 of [1, 2, 3, 4] is 2.5. None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = min(max(fraction, 0.0), 1.0) * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def slug(text: str, fallback: str = "run") -> str:
    """A file-name-safe form of text: letters, digits, `-`, `_` and `.` kept, the rest become `-`."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(text))
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-.") or fallback


def shorten(text: object, limit: int = 70) -> str:
    """One line of at most `limit` characters (newlines folded, an ellipsis where cut)."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def percent(value: float | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage, `-` when unknown."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"
