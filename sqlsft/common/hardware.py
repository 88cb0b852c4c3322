"""What the machine has: GPUs (count, names, memory, bf16), CPU cores and their bf16 support, free disk."""

import glob
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_gib: float
    bf16: bool


@dataclass(frozen=True)
class Hardware:
    gpus: list[Gpu] = field(default_factory=list)
    cpu_cores: int = 1

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def all_bf16(self) -> bool:
        return bool(self.gpus) and all(g.bf16 for g in self.gpus)

    def describe(self) -> str:
        if not self.gpus:
            return f"no GPU ({self.cpu_cores} CPU cores)"
        names = ", ".join(f"{g.name} ({g.memory_gib:.0f} GiB{', bf16' if g.bf16 else ''})" for g in self.gpus)
        return f"{len(self.gpus)} GPU: {names}"


# Device nodes of NVIDIA, AMD (ROCm) and WSL GPUs. Without one there is no GPU to find, and importing torch
# to be told so costs seconds (tens of seconds on a busy 2-core machine).
GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")
FORCE_GPU_PROBE_ENV = "SQLSFT_FORCE_GPU_PROBE"


def gpu_device_present() -> bool:
    return os.environ.get(FORCE_GPU_PROBE_ENV) == "1" or any(glob.glob(node) for node in GPU_DEVICE_NODES)


def detect_hardware() -> Hardware:
    """Ask torch for CUDA devices (CUDA_VISIBLE_DEVICES honoured), only where a GPU device node exists."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus: list[Gpu] = []
    if not gpu_device_present():
        return Hardware(gpus=gpus, cpu_cores=cores)
    try:
        import torch

        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                bf16 = props.major >= 8  # Ampere and newer have native bf16
                gpus.append(Gpu(index, props.name, props.total_memory / 2**30, bf16))
    except Exception:  # a broken CUDA install reads as "no GPU", never as a crash
        gpus = []
    return Hardware(gpus=gpus, cpu_cores=cores)


def free_disk_gib(path: Path) -> float:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 2**30


def gpu_count() -> int:
    return detect_hardware().gpu_count


def cpu_has_native_bf16() -> bool | None:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); None where /proc/cpuinfo cannot tell."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return None
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None
    )
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags
