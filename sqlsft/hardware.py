"""What the machine has: GPUs (count, names, memory, bf16), CPU cores, free disk."""

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


def detect_hardware() -> Hardware:
    """Ask torch for CUDA devices (CUDA_VISIBLE_DEVICES honoured) without initialising more than needed."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus: list[Gpu] = []
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
