"""How a run is launched: the accelerate config for the hardware, and the one `accelerate launch` subprocess.

The distribution is accelerate's own: sqlsft only writes the YAML that `accelerate config` would write for
the chosen hardware (no distribution for one device, DDP or FSDP for several, several machines) and runs
`accelerate launch --config_file <it> -m sqlsft.train.worker ...`, printing that command and saving it.

Several CPU processes: accelerate's `MULTI_CPU` type is launched as ONE process unless mpirun is used,
so N CPU ranks are written as `distributed_type: MULTI_GPU` with `use_cpu: true`: accelerate then starts
N processes through torchrun, and each rank (TrainingArguments `use_cpu=True`) joins a gloo process group
(accelerate reports `MULTI_CPU`). The file alone reproduces the launch; no extra flag or variable is needed.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Hardware
from sqlsft.common.processes import shell_line, signal_group

WORKER_MODULE = "sqlsft.train.worker"
STRATEGIES = ("ddp", "fsdp")
DEFAULT_MAIN_PORT = 29500


@dataclass(frozen=True)
class LaunchPlan:
    """Processes per machine, on which device, how they are distributed."""

    device: str  # "gpu" or "cpu"
    processes_per_node: int = 1
    nodes: int = 1
    node_rank: int = 0
    main_ip: str | None = None
    main_port: int | None = None
    strategy: str = "ddp"
    gpu_ids: str = "all"
    mixed_precision: str = "no"

    @property
    def num_processes(self) -> int:
        return self.processes_per_node * self.nodes

    @property
    def distributed(self) -> bool:
        return self.num_processes > 1 or self.strategy == "fsdp"

    @property
    def use_cpu(self) -> bool:
        return self.device == "cpu"

    def describe(self) -> str:
        n = self.processes_per_node
        if self.device == "gpu":
            what = f"{n} GPU" + ("s" if n > 1 else "")
        else:
            what = f"{n} CPU process" + ("es" if n > 1 else "")
        if self.nodes > 1:
            what += f" on each of {self.nodes} machines (this is machine {self.node_rank})"
        if self.distributed:
            what += ", " + (
                "FSDP" if self.strategy == "fsdp" else "DDP" + (" over gloo" if self.use_cpu else "")
            )
        return what


def plan_launch(
    hardware: Hardware,
    gpus: str | None = None,
    cpu_processes: int | None = None,
    strategy: str = "ddp",
    nodes: int = 1,
    node_rank: int = 0,
    main_ip: str | None = None,
    main_port: int | None = None,
    mixed_precision: str = "no",
    dry_run: bool = False,
) -> tuple[LaunchPlan, list[str]]:
    """Decide processes and devices from the options and the hardware. Returns the plan and notes to print.

    In a dry run the GPUs need not be present: a missing GPU becomes a note instead of an error.
    """
    notes: list[str] = []
    strategy = (strategy or "ddp").lower()
    if strategy not in STRATEGIES:
        raise SqlsftError(f"Unknown --strategy '{strategy}'.", f"Use one of: {', '.join(STRATEGIES)}.")
    if nodes < 1:
        raise SqlsftError("--nodes must be at least 1.")
    if not 0 <= node_rank < nodes:
        raise SqlsftError(
            f"--node-rank {node_rank} is out of range for --nodes {nodes}.", "Use 0 to nodes-1."
        )
    if nodes > 1 and not main_ip:
        raise SqlsftError(
            f"--nodes {nodes} needs --main-ip: the address of machine 0, reachable from every machine."
        )
    present = hardware.gpu_count
    if cpu_processes is not None:
        if gpus is not None:
            raise SqlsftError("Give --gpus or --cpu-processes, not both.")
        if cpu_processes < 1:
            raise SqlsftError("--cpu-processes must be at least 1.")
        if strategy == "fsdp":
            raise SqlsftError("FSDP needs GPUs.", "Use --strategy ddp with --cpu-processes.")
        plan = LaunchPlan(
            "cpu", cpu_processes, nodes, node_rank, main_ip, main_port, "ddp", "all", mixed_precision
        )
        return _with_port(plan), notes
    if gpus is None:
        if present == 0:
            if nodes > 1 or strategy == "fsdp":
                raise SqlsftError(
                    "No GPU found.", "Pass --gpus N (with --dry-run to prepare the job elsewhere)."
                )
            return LaunchPlan("cpu", 1, mixed_precision=mixed_precision), notes
        count = present
    elif str(gpus).lower() == "all":
        if present == 0:
            if not dry_run:
                raise SqlsftError(
                    "--gpus all: no GPU found on this machine.",
                    "Drop --gpus to train on the CPU, or use --gpus N --dry-run to prepare a GPU job.",
                )
            raise SqlsftError("--gpus all cannot be resolved without GPUs.", "Use --gpus N in a dry run.")
        count = present
    else:
        try:
            count = int(gpus)
        except ValueError:
            raise SqlsftError(f"--gpus {gpus!r}: give a number or 'all'.") from None
        if count < 1:
            raise SqlsftError(
                "--gpus must be at least 1.", "Drop --gpus (or use --cpu-processes N) for the CPU."
            )
    if count > present:
        have = "none" if present == 0 else f"{present} ({', '.join(g.name for g in hardware.gpus)})"
        if not dry_run:
            hint = (
                "Use --cpu-processes N to train on the CPU, or --dry-run to prepare the job for a GPU machine."
                if present == 0
                else f"Use --gpus {present} or fewer, or --dry-run to prepare the job for a bigger machine."
            )
            raise SqlsftError(f"Asked for {count} GPUs but this machine has {have}.", hint)
        notes.append(f"dry run: this machine has {present} GPU(s); the job needs {count} on each machine")
    gpu_ids = "all" if count >= present else ",".join(str(i) for i in range(count))
    plan = LaunchPlan("gpu", count, nodes, node_rank, main_ip, main_port, strategy, gpu_ids, mixed_precision)
    return _with_port(plan), notes


def mixed_precision(training: dict) -> str:
    """accelerate's mixed_precision for a config's training section."""
    if training.get("bf16"):
        return "bf16"
    if training.get("fp16"):
        return "fp16"
    return "no"


def _with_port(plan: LaunchPlan) -> LaunchPlan:
    if plan.main_port is not None or not plan.distributed:
        return plan
    # one machine: 0 lets accelerate pick a free port; several machines must agree on one
    port = 0 if plan.nodes == 1 else DEFAULT_MAIN_PORT
    return LaunchPlan(**{**plan.__dict__, "main_port": port})


def accelerate_config(plan: LaunchPlan) -> dict:
    """The accelerate config file's content, as `accelerate config` would write it for this plan."""
    config: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "NO",
        "downcast_bf16": "no",
        "enable_cpu_affinity": False,
        "gpu_ids": plan.gpu_ids,
        "machine_rank": plan.node_rank,
        "main_training_function": "main",
        "mixed_precision": plan.mixed_precision,
        "num_machines": plan.nodes,
        "num_processes": plan.num_processes,
        "rdzv_backend": "static",
        "same_network": True,
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
        "use_cpu": plan.use_cpu,
    }
    if plan.device == "gpu" and plan.processes_per_node == 1 and plan.nodes == 1 and plan.gpu_ids == "all":
        config["gpu_ids"] = "0"
    if plan.distributed:
        # MULTI_GPU also for CPU ranks: accelerate's launcher then starts them with torchrun (see module doc)
        config["distributed_type"] = "FSDP" if plan.strategy == "fsdp" else "MULTI_GPU"
        config["main_process_port"] = plan.main_port
        if plan.nodes > 1:
            config["main_process_ip"] = plan.main_ip
    if plan.strategy == "fsdp":
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_activation_checkpointing": False,
        }
    return config


def accelerate_yaml(plan: LaunchPlan) -> str:
    header = [f"# accelerate config generated by sqlsft: {plan.describe()}."]
    if plan.use_cpu and plan.distributed:
        header.append("# CPU ranks: MULTI_GPU + use_cpu makes accelerate start them with torchrun over gloo.")
    header.append(
        "# Launch: accelerate launch --config_file <this file> -m sqlsft.train.worker --run-dir <run>"
    )
    body = yaml.safe_dump(accelerate_config(plan), sort_keys=True, default_flow_style=False)
    return "\n".join(header) + "\n" + body


def write_accelerate_config(plan: LaunchPlan, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(accelerate_yaml(plan), encoding="utf-8")
    return path


def accelerate_executable() -> list[str]:
    script = Path(sys.executable).parent / "accelerate"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "accelerate.commands.launch"]


def launch_command(config_file: Path, run_dir: Path, resume_from: Path | None = None) -> list[str]:
    exe = accelerate_executable()
    command = [*exe, "launch"] if len(exe) == 1 else list(exe)
    command += ["--config_file", str(config_file), "-m", WORKER_MODULE, "--run-dir", str(run_dir)]
    if resume_from is not None:
        command += ["--resume-from", str(resume_from)]
    return command


def write_launch_script(command: list[str], path: Path, env: dict[str, str] | None = None) -> Path:
    """launch.sh: the exact command, runnable by hand from any folder."""
    lines = [
        "#!/usr/bin/env bash",
        "# The command sqlsft ran for this run; rerun it by hand with: bash " + shlex.quote(str(path)),
        "set -euo pipefail",
        f"cd {shlex.quote(os.getcwd())}",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted((env or {}).items())]
    lines.append(shell_line(command))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------- the subprocess


def worker_pids(process: subprocess.Popen) -> list[int]:
    """The training ranks under the launcher (they run the worker module)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    pids = []
    for child in children:
        try:
            if WORKER_MODULE in " ".join(child.cmdline()):
                pids.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def request_stop(process: subprocess.Popen) -> None:
    """Ask the ranks to checkpoint and stop after the current step (they agree on the step among themselves)."""
    pids = worker_pids(process)
    if not pids:  # still starting up: nothing to save yet, stop the launcher (its group is its pid)
        signal_group(process.pid, signal.SIGTERM)
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
