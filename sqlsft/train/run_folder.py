"""The run folder a launch needs: the resolved config, the accelerate config, run.json, the launch script
and a `running` status.json, all written before accelerate starts (so a launch can be rerun by hand)."""

import os
import time
from pathlib import Path

from sqlsft.common.files import now_iso
from sqlsft.common.processes import shell_line
from sqlsft.runs.registry import RunFolder, new_run_dir
from sqlsft.runs.run_info import RunInfo, write_run_info
from sqlsft.runs.status import RunState, update_status
from sqlsft.train.config import TrainConfig
from sqlsft.train.launch import LaunchPlan, write_accelerate_config, write_launch_script


def child_env() -> dict[str, str]:
    """Variables the training processes get on top of this environment (also written into launch.sh)."""
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if "WANDB_PROJECT" not in os.environ:
        env["WANDB_PROJECT"] = "sqlsft"
    return env


def counted_with(manifest: dict, model: str) -> bool:
    """prepare stored per-row token counts (num_tokens) made with this model's tokenizer."""
    return bool(manifest.get("tokens")) and (manifest.get("options") or {}).get("model") == model


def create_run(
    config: TrainConfig, plan: LaunchPlan, model_path: str, prepared, name: str | None
) -> RunFolder:
    """A new run folder with its resolved config, accelerate config, run.json and a `running` status."""
    folder = RunFolder(new_run_dir(config.preset, name=name))
    write_accelerate_config(plan, folder.accelerate_file)
    folder.config_file.write_text(config.to_yaml(), encoding="utf-8")
    write_run_info(
        folder.path,
        RunInfo(
            model=config.model_name,
            model_path=model_path,
            data_path=str(prepared.path),
            data_manifest=str(prepared.manifest_path),
            data_cache_hit=prepared.cache_hit,
            data_token_counts=counted_with(prepared.manifest, config.model_name),
        ),
    )
    update_status(
        folder.path,
        status=RunState.RUNNING, preset=config.preset, model=config.model_name, model_path=model_path,
        dataset=config.data.get("dataset"), gpus=plan.num_processes if plan.device == "gpu" else 0,
        processes=plan.num_processes, device=plan.device, distribution=plan.describe(),
        started_at=now_iso(), started_epoch=time.time(), finished_at=None, final_loss=None, steps=0,
        max_steps=config.training.get("max_steps"), pid=os.getpid(),
    )  # fmt: skip
    return folder


def write_launch(folder: RunFolder, command: list[str], script: Path) -> None:
    """The script that reruns this launch by hand, and the command in status.json."""
    write_launch_script(command, script, child_env())
    update_status(folder.path, command=shell_line(command))
