"""Train, validation and test splits, as the workshop makes them."""

from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.data.options import SPLIT_SEED

MIN_ROWS_TO_SPLIT = 20


def split_rows(splits: dict[str, Any], seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Keep a provided test split and carve validation (the size of test) out of train, as the workshop
    does; with no test split, hold out 10% of train and halve it into validation and test."""
    train = splits["train"]
    if "test" in splits:
        test = splits["test"]
        if "validation" in splits:
            return {"train": train, "validation": splits["validation"], "test": test}
        size = min(len(test), len(train) - 1)
        if size < 1:
            raise SqlsftError("The train split is too small to carve a validation split from.")
        parts = train.train_test_split(test_size=size, seed=seed)
        return {"train": parts["train"], "validation": parts["test"], "test": test}
    if len(train) < MIN_ROWS_TO_SPLIT:
        raise SqlsftError(
            f"Only {len(train)} rows: too few to split into train/validation/test (need {MIN_ROWS_TO_SPLIT})."
        )
    held = train.train_test_split(test_size=0.1, seed=seed)
    halves = held["test"].train_test_split(test_size=0.5, seed=seed)
    return {"train": held["train"], "validation": halves["train"], "test": halves["test"]}
