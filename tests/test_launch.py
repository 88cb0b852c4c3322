"""Accelerate configs for each hardware layout, checked by accelerate's own config classes and launcher."""

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Gpu, Hardware
from sqlsft.common.processes import shell_line
from sqlsft.train import launch

NO_GPU = Hardware(gpus=[], cpu_cores=2)


def gpus(n: int, bf16: bool = True) -> Hardware:
    return Hardware(gpus=[Gpu(i, "NVIDIA H100", 80.0, bf16) for i in range(n)], cpu_cores=32)


def accelerate_view(plan, tmp_path):
    """Write the config, load it with accelerate's classes, and run accelerate launch's own validation."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = launch.write_accelerate_config(plan, tmp_path / "accelerate.yaml")
    loaded = load_config_from_file(str(path))
    assert isinstance(loaded, ClusterConfig)
    assert ClusterConfig.from_yaml_file(str(path)).to_dict() == loaded.to_dict()
    command = launch.launch_command(path, tmp_path / "run")
    args = launch_command_parser().parse_args(command[command.index("launch") + 1 :])
    args, _, _ = _validate_launch_command(args)
    return loaded, args


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_gpu_configs_for_1_2_4_8_gpus(count, tmp_path):
    plan, notes = launch.plan_launch(gpus(8), gpus=str(count), mixed_precision="bf16")
    assert notes == []
    loaded, args = accelerate_view(plan, tmp_path)
    assert loaded.num_processes == count and loaded.num_machines == 1
    assert loaded.mixed_precision == "bf16" and not loaded.use_cpu
    if count == 1:
        assert loaded.distributed_type == "NO" and loaded.gpu_ids == "0"
        assert not args.multi_gpu
    else:
        assert loaded.distributed_type == "MULTI_GPU"
        assert loaded.gpu_ids == ("all" if count == 8 else ",".join(map(str, range(count))))
        assert args.multi_gpu and args.num_processes == count
    assert args.module and args.training_script == "sqlsft.train.worker"


def test_default_uses_every_gpu_present(tmp_path):
    plan, _ = launch.plan_launch(gpus(4))
    assert (plan.device, plan.num_processes, plan.gpu_ids) == ("gpu", 4, "all")
    assert launch.plan_launch(gpus(4), gpus="all")[0] == plan


def test_fsdp_config(tmp_path):
    plan, _ = launch.plan_launch(gpus(4), gpus="4", strategy="fsdp", mixed_precision="bf16")
    loaded, args = accelerate_view(plan, tmp_path)
    assert loaded.distributed_type == "FSDP" and loaded.num_processes == 4
    assert loaded.fsdp_config["fsdp_version"] == 2
    assert loaded.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert args.use_fsdp and args.fsdp_version == 2


def test_two_node_config(tmp_path):
    plan, _ = launch.plan_launch(
        gpus(8), gpus="8", nodes=2, node_rank=1, main_ip="10.0.0.1", main_port=29501, mixed_precision="bf16"
    )
    loaded, args = accelerate_view(plan, tmp_path)
    assert loaded.distributed_type == "MULTI_GPU"
    assert (loaded.num_processes, loaded.num_machines, loaded.machine_rank) == (16, 2, 1)
    assert (loaded.main_process_ip, loaded.main_process_port) == ("10.0.0.1", 29501)
    assert args.num_machines == 2 and args.machine_rank == 1
    # without a port, machines agree on accelerate's default one
    assert launch.plan_launch(gpus(8), nodes=2, main_ip="h0")[0].main_port == launch.DEFAULT_MAIN_PORT


def test_cpu_configs_one_process_and_several_ranks(tmp_path):
    plan, _ = launch.plan_launch(NO_GPU)
    loaded, args = accelerate_view(plan, tmp_path)
    assert (plan.device, loaded.distributed_type, loaded.num_processes, loaded.use_cpu) == (
        "cpu",
        "NO",
        1,
        True,
    )

    plan, _ = launch.plan_launch(NO_GPU, cpu_processes=2)
    loaded, args = accelerate_view(plan, tmp_path)
    # MULTI_GPU + use_cpu: accelerate's launcher starts 2 torchrun ranks (MULTI_CPU alone would start one)
    assert loaded.distributed_type == "MULTI_GPU" and loaded.use_cpu and loaded.num_processes == 2
    assert args.multi_gpu and args.num_processes == 2 and args.main_process_port == 0
    assert "gloo" in plan.describe()


def test_launch_command_and_script(tmp_path):
    command = launch.launch_command(tmp_path / "acc.yaml", tmp_path / "run", resume_from=tmp_path / "ck")
    assert command[-6:] == ["-m", "sqlsft.train.worker", "--run-dir", str(tmp_path / "run"), "--resume-from",
                            str(tmp_path / "ck")]  # fmt: skip
    assert "--config_file" in command and str(tmp_path / "acc.yaml") in command
    script = launch.write_launch_script(command, tmp_path / "launch.sh", {"WANDB_PROJECT": "p q"})
    text = script.read_text()
    assert shell_line(command) in text and "export WANDB_PROJECT='p q'" in text
    assert script.stat().st_mode & 0o111


@pytest.mark.parametrize(
    ("hardware", "kwargs", "expected"),
    [
        (NO_GPU, {"gpus": "4"}, "Asked for 4 GPUs but this machine has none.*--cpu-processes"),
        (gpus(1), {"gpus": "2"}, r"Asked for 2 GPUs but this machine has 1 \(NVIDIA H100\).*--gpus 1"),
        (NO_GPU, {"gpus": "all"}, "no GPU found"),
        (NO_GPU, {"gpus": "two"}, "give a number or 'all'"),
        (NO_GPU, {"cpu_processes": 2, "strategy": "fsdp"}, "FSDP needs GPUs"),
        (NO_GPU, {"cpu_processes": 2, "gpus": "1"}, "not both"),
        (gpus(2), {"strategy": "zero3"}, "Unknown --strategy"),
        (gpus(2), {"nodes": 2}, "needs --main-ip"),
        (gpus(2), {"nodes": 2, "node_rank": 2, "main_ip": "h"}, "out of range"),
    ],
)
def test_launch_errors(hardware, kwargs, expected):
    with pytest.raises(SqlsftError, match=expected):
        launch.plan_launch(hardware, **kwargs)


def test_dry_run_plans_gpus_that_are_not_here(tmp_path):
    plan, notes = launch.plan_launch(NO_GPU, gpus="4", dry_run=True)
    assert plan.device == "gpu" and plan.num_processes == 4
    assert notes and "the job needs 4" in notes[0]
    loaded, _ = accelerate_view(plan, tmp_path)
    assert loaded.distributed_type == "MULTI_GPU"
