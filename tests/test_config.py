"""Presets, user config files and --set overrides, checked against TRL's real SFTConfig/ModelConfig fields."""

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.train.config import list_presets, load_resolved, resolve_config

PRESETS = ("baseline", "demo", "fast", "liger", "liger-slow", "lora", "qlora")


def test_every_shipped_preset_is_listed():
    assert set(PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_resolves_and_builds_a_real_sft_config(name, tmp_path):
    from trl import ModelConfig, SFTConfig

    config = resolve_config(preset=name)
    assert config.preset == name
    assert config.model["model_name_or_path"]
    # the values themselves are accepted by TRL (use_cpu: this machine has no GPU for bf16)
    from sqlsft.train.token_budget import Device, plan_micro_batches

    planned = plan_micro_batches(config, Device("cpu"))  # `fast`'s token budget becomes TRL's own keys
    SFTConfig(output_dir=str(tmp_path), use_cpu=True, **planned.training)
    ModelConfig(**config.model)


def test_presets_reproduce_the_workshop_and_add_fast_and_demo():
    baseline = resolve_config(preset="baseline")
    assert baseline.model == {
        "model_name_or_path": "google/gemma-3-270m-it",
        "dtype": "bfloat16",
        "attn_implementation": "eager",
    }
    t = baseline.training
    assert (t["per_device_train_batch_size"], t["learning_rate"], t["lr_scheduler_type"]) == (
        4,
        2e-5,
        "cosine",
    )
    assert t["gradient_checkpointing"] and t["bf16"] and t["save_strategy"] == "epoch"
    assert t["num_train_epochs"] == 1 and t["warmup_steps"] == 0.1

    liger = resolve_config(preset="liger").training
    assert liger["use_liger_kernel"] and liger["per_device_train_batch_size"] == 192
    assert liger["learning_rate"] == 2e-5  # inherited from baseline
    slow = resolve_config(preset="liger-slow").training
    assert slow["use_liger_kernel"] and slow["per_device_train_batch_size"] == 4

    fast = resolve_config(preset="fast")
    assert fast.training["packing"] and fast.training["packing_strategy"] == "bfd"
    assert fast.training["completion_only_loss"] and not fast.training["gradient_checkpointing"]
    assert fast.model["attn_implementation"] == "flex_attention"
    assert fast.training["learning_rate"] == baseline.training["learning_rate"]  # same objective

    demo = resolve_config(preset="demo")
    assert demo.model["model_name_or_path"] == "embedded" and demo.data["dataset"] == "builtin"
    assert demo.training["max_steps"] <= 128 and demo.training["max_length"] <= 512
    # the measured recipe (README, "The demo recipe"): frozen embeddings, bf16 only where native, packed rows
    assert demo.training["freeze_embeddings"] and demo.training["bf16_when_native"]
    assert demo.training["bf16"] is False and demo.model["dtype"] == "float32"
    assert demo.training["tokens_per_micro_batch"] >= demo.training["max_length"]


def test_user_config_names_a_preset_and_overrides_apply_in_order(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "preset: fast\n"
        "model:\n  model_name_or_path: some/model\n"
        "training:\n  learning_rate: 2e-5\n  per_device_train_batch_size: 2\n"
    )
    config = resolve_config(
        config_file=path,
        overrides=["per_device_train_batch_size=16", "model.dtype=float32", "num_rows=500"],
        model="embedded",
        max_steps=7,
    )
    assert config.preset == "fast"
    assert config.training["packing"] is True  # from the preset
    assert config.training["learning_rate"] == 2e-5  # YAML reads 2e-5 as a string; made a float
    assert config.training["per_device_train_batch_size"] == 16  # --set beats the file
    assert config.training["max_steps"] == 7
    assert config.model == {
        "model_name_or_path": "embedded",
        "dtype": "float32",
        "attn_implementation": "flex_attention",
    }
    assert config.data["num_rows"] == 500
    # YAML reads a bare `no` as false: for a field whose choices include "no", it means "no"
    assert resolve_config(preset="demo", overrides=["save_strategy=no"]).training["save_strategy"] == "no"
    assert config.sources[0] == "preset baseline" and str(path) in config.sources


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = resolve_config(preset="liger-slow", overrides=["max_steps=3"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    again = load_resolved(path)
    assert (again.preset, again.model, again.training, again.data) == (
        config.preset,
        config.model,
        config.training,
        config.data,
    )
    # and a run's config.yaml can be given back as --config
    assert resolve_config(config_file=path).training == config.training


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["learning_rat=1e-4"], "unknown key.*Did you mean `learning_rate`"),
        (["warmup_ratio=0.1"], "warmup_steps"),
        (
            ["per_device_train_batch_size=abc"],
            "per_device_train_batch_size = 'abc' has the wrong type; expected an integer",
        ),
        (["bf16=maybe"], "bf16 = 'maybe' has the wrong type; expected true or false"),
        (["lr_scheduler_type=cosin"], "expected one of .*Did you mean `cosine`"),
        (["model.dtype=float64"], "dtype = 'float64' is not allowed"),
        (["output_dir=/tmp/x"], "output_dir: cannot be set"),
        (["no_equals_sign"], "write it as key=value"),
    ],
)
def test_bad_overrides_name_the_key_and_what_to_do(overrides, expected):
    with pytest.raises(SqlsftError, match=expected):
        resolve_config(preset="demo", overrides=overrides)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("training:\n  learnin_rate: 0.1\n", "unknown training key `learnin_rate`.*`learning_rate`"),
        ("training:\n  dtype: bfloat16\n", "belongs under `model:`"),
        ("per_device_train_batch_size: 4\n", "top-level key.*put it under `training:`"),
        ("training:\n  max_steps: ten\n", "max_steps = 'ten' has the wrong type; expected an integer"),
        ("training: [1, 2]\n", "must be a mapping"),
        ("training:\n  lr: [unclosed\n", r"bad.yaml line \d+ is not valid YAML"),
        ("preset: nope\n", "Unknown preset 'nope'"),
    ],
)
def test_bad_config_files_are_one_clear_error(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SqlsftError, match=expected):
        resolve_config(config_file=path)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SqlsftError) as info:
        resolve_config(preset="fastest")
    assert "Did you mean `fast`?" in info.value.message
    for name in PRESETS:
        assert name in info.value.hint


def test_both_sources_are_refused(tmp_path):
    with pytest.raises(SqlsftError, match="--preset or --config, not both"):
        resolve_config(preset="demo", config_file=tmp_path / "x.yaml")
    with pytest.raises(SqlsftError, match="does not exist"):
        resolve_config(config_file=tmp_path / "missing.yaml")


def test_bf16_when_native_follows_the_device():
    from dataclasses import replace

    from sqlsft.train.token_budget import Device, plan_micro_batches

    config = resolve_config(preset="demo", overrides=["bf16_when_native=true", "bf16=false"])
    amx = plan_micro_batches(config, Device("cpu", bf16=True))
    assert amx.training["bf16"] is True and "bf16_when_native" not in amx.training
    assert any("bf16 mixed precision: on" in note for note in amx.notes)
    avx2 = plan_micro_batches(config, Device("cpu", bf16=False))  # emulated bf16 would be many times slower
    assert avx2.training["bf16"] is False
    assert any("bf16 mixed precision: off" in note for note in avx2.notes)
    gpu = plan_micro_batches(config, Device("cuda", 80.0, bf16=True))
    assert gpu.training["bf16"] is True
    plain = plan_micro_batches(
        replace(config, training={**config.training, "bf16_when_native": False}), Device("cpu", bf16=True)
    )
    assert plain.training["bf16"] is False and not any("bf16" in note for note in plain.notes)
