"""What decides a prepared data set: every field of PrepareOptions but the last three goes into its cache key."""

from dataclasses import dataclass, field

DEFAULT_DATASET = "gretelai/synthetic_text_to_sql"
DEFAULT_MODEL = "google/gemma-3-270m-it"
DEFAULT_MAX_LENGTH = 1024
SPLIT_SEED = 42
DEFAULT_TEMPLATE = "text-to-sql"  # a folder under templates/


@dataclass
class PrepareOptions:
    dataset: str = DEFAULT_DATASET  # "builtin", a hub id, a local dataset folder, or data file(s)
    data_files: list[str] = field(default_factory=list)  # extra train files (the first is `dataset`)
    test_file: str | None = None
    revision: str | None = None
    subset: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)  # source column -> sqlsft column
    template: str = DEFAULT_TEMPLATE
    model: str | None = DEFAULT_MODEL  # tokenizer for the token statistics; None skips them
    max_length: int = DEFAULT_MAX_LENGTH
    num_rows: int | None = None  # builtin size (default: the generator's), or a cap on other sources
    seed: int = SPLIT_SEED
    # How and where to prepare, not what: left out of the cache key.
    cache_dir: str | None = None
    force: bool = False
    num_proc: int | None = None


# The fields above that do not change the prepared rows.
RUNTIME_FIELDS = ("cache_dir", "force", "num_proc")
