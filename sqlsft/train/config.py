"""Training configuration: presets, user config files and `--set` overrides, checked against TRL's own fields.

A preset (`presets/<name>.yaml`) and a user config file share one layout, TRL's three-part split:

    description: one line
    preset: baseline          # optional: start from this preset, then apply the rest
    data: {...}               # sqlsft.data.PrepareOptions fields (dataset, template, num_rows, ...)
    model: {...}              # trl.ModelConfig fields (model_name_or_path, dtype, attn_implementation, ...)
    training: {...}           # trl.SFTConfig fields (learning_rate, per_device_train_batch_size, ...)

Every key is checked against the real dataclasses (an unknown key suggests the closest one, a wrong type
names the expected one) before anything is launched. The field table is read once per TRL/transformers
version and cached, so later commands need not import torch just to check a YAML file.
"""

import dataclasses
import difflib
import enum
import importlib.metadata
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir, presets_dir
from sqlsft.train.eval_settings import EVAL_MAX_NEW_TOKENS_KEY, EVAL_ROWS_KEY, check_eval_settings
from sqlsft.train.token_budget import check_token_budget

SECTIONS = ("data", "model", "training")
DEFAULT_PRESET = "demo"
FIELD_TABLE_VERSION = 1  # bump when the cached field table changes shape
# `sources`: written by sqlsft, ignored. `merge_adapter`: a LoRA run merges its adapter into model/ (default).
TOP_LEVEL_KEYS = ("description", "preset", *SECTIONS, "merge_adapter", "sources")
# Fields sqlsft sets itself (the run folder owns them); a config that sets them is refused with the reason.
MANAGED_FIELDS = {
    "output_dir": "sqlsft writes checkpoints into the run folder (runs/<run>/checkpoints)",
    "run_name": "the run is named after its folder",
    "resume_from_checkpoint": "use `sqlsft train --resume [RUN]`",
    "push_to_hub": "sqlsft keeps the model in the run folder (runs/<run>/model)",
}
# Data options train decides from the other sections (or that make no sense for a run).
DATA_MANAGED = {"model", "max_length", "cache_dir", "force", "num_proc"}
# Names people bring from older TRL/transformers configs or the workshop, and what they became.
RENAMED_FIELDS = {
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio of the total steps)",
    "torch_dtype": "dtype",
    "no_cuda": "use_cpu",
    "max_seq_length": "max_length",
    "evaluation_strategy": "eval_strategy",
}


@dataclass(frozen=True)
class FieldSpec:
    """What one config key accepts: value kinds (int, float, bool, str, list, dict, none) and choices."""

    name: str
    section: str
    kinds: tuple[str, ...]
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        names = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                 "list": "a list", "dict": "a mapping", "none": "null"}  # fmt: skip
        if self.choices:
            return "one of " + ", ".join(self.choices) + (" or null" if "none" in self.kinds else "")
        return " or ".join(names[k] for k in self.kinds if k in names) or "any value"


# Training keys sqlsft reads itself (train/token_budget.py) and never passes to SFTConfig.
SQLSFT_TRAINING_FIELDS = {
    "tokens_per_micro_batch": FieldSpec("tokens_per_micro_batch", "training", ("int", "str", "none")),
    "liger_kernel_when_available": FieldSpec("liger_kernel_when_available", "training", ("bool",)),
    "freeze_embeddings": FieldSpec("freeze_embeddings", "training", ("bool",)),  # train/freeze.py
    "bf16_when_native": FieldSpec("bf16_when_native", "training", ("bool",)),  # train/token_budget.py
    EVAL_ROWS_KEY: FieldSpec(EVAL_ROWS_KEY, "training", ("int",)),  # train/eval_settings.py
    EVAL_MAX_NEW_TOKENS_KEY: FieldSpec(EVAL_MAX_NEW_TOKENS_KEY, "training", ("int", "none")),
}

# ---------------------------------------------------------------- the field table


def _kinds_of(annotation: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kinds: list[str] = []
    choices: list[str] = []
    origin = typing.get_origin(annotation)
    members = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    for member in members:
        base = typing.get_origin(member) or member
        if member is type(None):
            kinds.append("none")
        elif base is typing.Literal:
            kinds.append("str")
            choices.extend(str(v) for v in typing.get_args(member))
        elif isinstance(base, type) and issubclass(base, enum.Enum):
            kinds.append("str")
            choices.extend(str(m.value) for m in base)
        elif base in (bool, int, float, str, list, dict):
            kinds.append(base.__name__)
        elif base in (tuple, set):
            kinds.append("list")
        else:
            kinds.append("dict")  # nested config objects (ParallelismConfig, ...) are given as mappings
    # `SchedulerType | str` still means one of the enum's values: TrainingArguments converts it
    return tuple(dict.fromkeys(kinds)), tuple(dict.fromkeys(choices))


def _specs_from_dataclass(cls: type, section: str, skip: set[str] = frozenset()) -> dict[str, FieldSpec]:
    specs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.name in skip or not f.init:
            continue
        kinds, choices = _kinds_of(hints.get(f.name, f.type))
        meta_choices = f.metadata.get("choices") if f.metadata else None
        if meta_choices:
            choices = tuple(str(c) for c in meta_choices if c is not None)
        specs[f.name] = FieldSpec(f.name, section, kinds, choices)
    return specs


def _library_versions() -> str:
    return "-".join(
        f"{name}{importlib.metadata.version(name)}" for name in ("trl", "transformers", "accelerate")
    )


def field_table() -> dict[str, dict[str, FieldSpec]]:
    """{section: {key: FieldSpec}} from SFTConfig, ModelConfig and PrepareOptions (cached per library versions)."""
    from sqlsft import __version__
    from sqlsft.data.prepare import PrepareOptions

    data = _specs_from_dataclass(PrepareOptions, "data", DATA_MANAGED)
    name = f"{_library_versions()}-sqlsft{__version__}-v{FIELD_TABLE_VERSION}.json"
    cache_file = cache_dir() / "config-fields" / name
    try:
        raw = json.loads(cache_file.read_text())
        table = {s: {k: FieldSpec(k, s, tuple(v[0]), tuple(v[1])) for k, v in raw[s].items()} for s in raw}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        from trl import ModelConfig, SFTConfig  # imports torch: done once per library version

        table = {
            "model": _specs_from_dataclass(ModelConfig, "model"),
            "training": _specs_from_dataclass(SFTConfig, "training"),
        }
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            payload = {s: {k: [v.kinds, v.choices] for k, v in specs.items()} for s, specs in table.items()}
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload))
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only cache only costs the import next time
    return {"data": data, **table, "training": {**table["training"], **SQLSFT_TRAINING_FIELDS}}


# ---------------------------------------------------------------- checking values


def _closest(key: str, table: dict[str, dict[str, FieldSpec]]) -> str:
    if key in RENAMED_FIELDS:
        return f" It is now called {RENAMED_FIELDS[key]}."
    for section, specs in table.items():
        if key in specs:
            return f" It belongs under `{section}:` (or use --set {section}.{key}=...)."
    names = [k for specs in table.values() for k in specs]
    match = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" Did you mean `{match[0]}`?" if match else ""


def check_value(spec: FieldSpec, value: Any, origin: str) -> Any:
    """Return the value (a float-looking string made a float), or raise naming the key and the expected type."""
    kinds = spec.kinds
    if value is None:
        if "none" in kinds:
            return None
    elif isinstance(value, bool):
        if "bool" in kinds:
            return value
        if "str" in kinds and ("no" if not value else "yes") in spec.choices:
            return "no" if not value else "yes"  # YAML 1.1 reads a bare `no` (save_strategy: no) as false
    elif isinstance(value, int):
        if "int" in kinds or "float" in kinds:
            return value
    elif isinstance(value, float):
        if "float" in kinds:
            return value
    elif isinstance(value, str):
        if "list" in kinds and "str" not in kinds:
            return [value]  # one item (lora_target_modules: all-linear, as TRL's own YAML files write it)
        if "float" in kinds and "str" not in kinds:
            try:  # YAML reads 2e-5 (no dot) as a string
                return float(value)
            except ValueError:
                pass
        if "str" in kinds:
            if spec.choices and value not in spec.choices:
                close = difflib.get_close_matches(value, spec.choices, n=1)
                hint = f" Did you mean `{close[0]}`?" if close else ""
                raise SqlsftError(
                    f"{origin}: {spec.section}.{spec.name} = {value!r} is not allowed; "
                    f"expected one of {', '.join(spec.choices)}.{hint}"
                )
            return value
    elif isinstance(value, list | tuple):
        if "list" in kinds:
            return list(value)
    elif isinstance(value, dict) and "dict" in kinds:
        return value
    if "dict" in kinds and isinstance(value, str):
        return value  # TRL accepts JSON strings for its dict fields
    raise SqlsftError(
        f"{origin}: {spec.section}.{spec.name} = {value!r} has the wrong type; expected {spec.describe()}."
    )


def check_section(section: str, values: Any, origin: str, table: dict[str, dict[str, FieldSpec]]) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SqlsftError(f"{origin}: `{section}:` must be a mapping of keys to values, not {values!r}.")
    checked = {}
    for key, value in values.items():
        key = str(key)
        if section == "training" and key in MANAGED_FIELDS:
            raise SqlsftError(f"{origin}: training.{key} cannot be set: {MANAGED_FIELDS[key]}.")
        if section == "data" and key in DATA_MANAGED:
            raise SqlsftError(
                f"{origin}: data.{key} cannot be set here: train takes it from the model and training sections."
            )
        spec = table[section].get(key)
        if spec is None:
            raise SqlsftError(f"{origin}: unknown {section} key `{key}`.{_closest(key, table)}")
        checked[key] = check_value(spec, value, origin)
    return checked


# ---------------------------------------------------------------- presets and files


def list_presets() -> list[str]:
    folder = presets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def preset_path(name: str) -> Path:
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(list_presets()) or "none found"
        close = difflib.get_close_matches(name, list_presets(), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise SqlsftError(f"Unknown preset '{name}'.{hint}", f"Available presets: {available}.")
    return path


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SqlsftError(f"Config file {path} does not exist.") from None
    except IsADirectoryError:
        raise SqlsftError(
            f"Config file {path} is a folder.", "Pass a YAML file laid out like a preset."
        ) from None
    except UnicodeDecodeError:
        raise SqlsftError(
            f"Config file {path} is not a text file (not UTF-8).", "Pass a YAML file laid out like a preset."
        ) from None
    except OSError as exc:
        raise SqlsftError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]  # a ReaderError has no `problem`
        raise SqlsftError(f"Config file {path}{where} is not valid YAML: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SqlsftError(f"Config file {path} must be a mapping with data/model/training sections.")
    return data


@dataclass
class TrainConfig:
    """A resolved configuration: what the run folder's config.yaml holds and the worker reads."""

    preset: str
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where each layer came from, in order
    # LoRA/QLoRA: merge the adapter into model/ at the end (--no-merge: keep it apart)
    merge_adapter: bool = True

    def as_dict(self) -> dict[str, Any]:
        out = {
            "description": self.description,
            "preset": self.preset,
            "sources": self.sources,
            "data": self.data,
            "model": self.model,
            "training": self.training,
        }
        if not self.merge_adapter:
            out["merge_adapter"] = False
        return out

    @property
    def uses_peft(self) -> bool:
        """A LoRA (or QLoRA) run: TRL trains an adapter on a frozen base."""
        return bool(self.model.get("use_peft"))

    @property
    def quantized(self) -> bool:
        """The frozen base is loaded in 4 or 8 bits through bitsandbytes (QLoRA)."""
        return bool(self.model.get("load_in_4bit") or self.model.get("load_in_8bit"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.as_dict(), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
        )

    @property
    def model_name(self) -> str:
        return str(self.model.get("model_name_or_path") or "")


def _layer(config: TrainConfig, raw: dict, origin: str, table, seen: tuple[str, ...] = ()) -> None:
    """Apply one file's content on top of `config` (after the preset it names, if any)."""
    for key in map(str, raw):
        if key not in TOP_LEVEL_KEYS:
            section = table_section(key, table)
            close = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1)
            if section:
                hint = f" It is a {section} key: put it under `{section}:`."
            else:
                hint = f" Did you mean `{close[0]}`?" if close else ""
            raise SqlsftError(
                f"{origin}: unknown top-level key `{key}`.{hint}",
                f"A config has: {', '.join(TOP_LEVEL_KEYS)}.",
            )
    base = raw.get("preset")
    if base:
        if base in seen:
            raise SqlsftError(
                f"{origin}: presets refer to each other in a loop ({' -> '.join([*seen, base])})."
            )
        _layer(config, read_yaml(preset_path(str(base))), f"preset {base}", table, (*seen, str(base)))
        config.preset = str(base)
    for section in SECTIONS:
        getattr(config, section).update(check_section(section, raw.get(section), origin, table))
    if raw.get("description"):
        config.description = str(raw["description"])
    if "merge_adapter" in raw:
        if not isinstance(raw["merge_adapter"], bool):
            raise SqlsftError(f"{origin}: merge_adapter = {raw['merge_adapter']!r}: expected true or false.")
        config.merge_adapter = raw["merge_adapter"]
    config.sources.append(origin)


def table_section(key: str, table) -> str | None:
    for section, specs in table.items():
        if key in specs:
            return section
    return None


def parse_override(text: str, table) -> tuple[str, str, Any]:
    """`key=value` or `section.key=value` -> (section, key, value); the value is read as YAML."""
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SqlsftError(f"--set {text!r}: write it as key=value, for example --set learning_rate=1e-4.")
    if key.removeprefix("training.") in MANAGED_FIELDS:
        name = key.removeprefix("training.")
        raise SqlsftError(f"--set {name}: cannot be set: {MANAGED_FIELDS[name]}.")
    section, dot, name = key.partition(".")
    if dot and section in SECTIONS:
        key = name
    else:
        section = table_section(key, table) or ""
    if not section or key not in table[section]:
        raise SqlsftError(f"--set {key}: unknown key.{_closest(key, table)}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    return section, key, value


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    model: str | None = None,
    dataset: str | None = None,
    max_steps: int | None = None,
    report_to: str | None = None,
    merge_adapter: bool | None = None,
    eval_rows: int | None = None,
    eval_at_start: bool = False,
    load_best: bool = False,
) -> TrainConfig:
    """Preset, then the user's file (which may name a preset), then command-line options, then --set."""
    table = field_table()
    if preset and config_file:
        raise SqlsftError(
            "Give --preset or --config, not both.", "A config file can name its preset: `preset: NAME`."
        )
    config = TrainConfig(preset=preset or "custom")
    if config_file:
        _layer(config, read_yaml(Path(config_file)), str(config_file), table)
    else:
        name = preset or DEFAULT_PRESET
        _layer(config, read_yaml(preset_path(name)), f"preset {name}", table, (name,))
        config.preset = name
    if model:
        config.model["model_name_or_path"] = model
    if dataset:
        config.data["dataset"] = dataset
    if max_steps is not None:
        if max_steps < 1:
            raise SqlsftError(
                f"--max-steps {max_steps}: give a number of optimizer steps, at least 1.",
                "Leave it out to train for the config's num_train_epochs.",
            )
        config.training["max_steps"] = check_value(table["training"]["max_steps"], max_steps, "--max-steps")
    if report_to:
        config.training["report_to"] = report_to
    if eval_rows is not None:
        config.training[EVAL_ROWS_KEY] = eval_rows
    if eval_at_start:
        config.training["eval_on_start"] = True
    if load_best:
        config.training["load_best_model_at_end"] = True
    for text in overrides:
        section, key, value = parse_override(text, table)
        getattr(config, section)[key] = check_value(table[section][key], value, f"--set {key}")
    if overrides:
        config.sources.append("--set " + " ".join(overrides))
    steps = config.training.get("max_steps")
    if isinstance(steps, int) and steps != -1 and steps < 1:  # TRL: -1 (its default) means "train the epochs"
        raise SqlsftError(
            f"training.max_steps = {steps}: give a number of optimizer steps, at least 1.",
            "Or -1 (TRL's default) to train for num_train_epochs.",
        )
    check_token_budget(config.training)
    check_eval_settings(config.training)
    if not config.model.get("model_name_or_path"):
        raise SqlsftError("No model given.", "Set model.model_name_or_path in the config, or pass --model.")
    quantized = [k for k in ("load_in_4bit", "load_in_8bit") if config.model.get(k)]
    if quantized and not config.model.get("use_peft"):
        raise SqlsftError(
            f"model.{quantized[0]} quantizes the base model, which then cannot be trained itself.",
            "Train an adapter on it: --preset qlora, or --set use_peft=true.",
        )
    if merge_adapter is not None:
        config.merge_adapter = merge_adapter
    if not config.merge_adapter and not config.model.get("use_peft"):
        raise SqlsftError(
            "--no-merge keeps a LoRA adapter unmerged, and this run trains the full model.",
            "Use it with --preset lora or qlora (or --set use_peft=true).",
        )
    return config


def load_resolved(path: Path) -> TrainConfig:
    """Read a run folder's config.yaml back (already resolved: no preset lookup)."""
    raw = read_yaml(path)
    sections = {name: raw.get(name) or {} for name in SECTIONS}
    for name, values in sections.items():
        if not isinstance(values, dict):
            raise SqlsftError(f"{path}: `{name}:` must be a mapping of keys to values.")
    sources = raw.get("sources") or []
    return TrainConfig(
        preset=str(raw.get("preset") or "custom"),
        description=str(raw.get("description") or ""),
        sources=list(sources) if isinstance(sources, list) else [str(sources)],
        merge_adapter=raw.get("merge_adapter") is not False,
        **sections,
    )
