"""Option values written as text: comma-separated lists and counts (GPUs, concurrency), one clear line when wrong."""

from sqlsft.common.errors import SqlsftError


def comma_list(text: str, option: str, example: str = "a,b") -> list[str]:
    """`a, b,c` -> ['a', 'b', 'c']; an empty list is an error."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise SqlsftError(f"{option}: give a comma-separated list, e.g. {example}.")
    return items


def parse_count(text: str, option: str, *, what: str = "a whole number", example: str = "1",
                minimum: int = 1, note: str = "") -> int:  # fmt: skip
    """One count of at least `minimum` (`note` says what the smallest one means)."""
    try:
        count = int(str(text).strip())
    except ValueError:
        raise SqlsftError(f"{option} {text!r}: give {what} such as {example}.") from None
    if count < minimum:
        raise SqlsftError(f"{option} {text!r}: counts start at {minimum}" + (f" ({note})." if note else "."))
    return count


def parse_counts(text: str, option: str, *, what: str = "whole numbers", example: str = "1,8",
                 minimum: int = 1, note: str = "") -> list[int]:  # fmt: skip
    """`1,4` -> [1, 4]: comma-separated counts, each at least `minimum`."""
    return [
        parse_count(item, option, what=what, example=example, minimum=minimum, note=note)
        for item in comma_list(text, option, example)
    ]
