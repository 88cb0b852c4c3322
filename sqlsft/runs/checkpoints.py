"""A run's checkpoints (written by the trainer under checkpoints/checkpoint-N/): which exist, whether one is
complete enough to resume from, and the step it holds."""

from dataclasses import dataclass, field
from pathlib import Path

from sqlsft.runs.fields import read_record

TRAINER_STATE_FILE = "trainer_state.json"  # transformers' own file; sqlsft only reads it
# What a checkpoint folder needs to be resumed from (weights are checked separately: several file layouts).
CHECKPOINT_FILES = (TRAINER_STATE_FILE, "optimizer.pt", "scheduler.pt")
PREFIX = "checkpoint-"


@dataclass
class CheckpointState:
    """The fields of trainer_state.json that resuming needs (wrong types read as None, named in `problems`)."""

    global_step: int | None = None
    max_steps: int | None = None
    problems: list[str] = field(default_factory=list, compare=False)


def checkpoints(checkpoints_dir: Path) -> list[Path]:
    """checkpoint-N folders, oldest step first."""
    folders = [
        p for p in Path(checkpoints_dir).glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX) :].isdigit()
    ]
    return sorted(folders, key=lambda p: int(p.name[len(PREFIX) :]))


def missing_checkpoint_files(checkpoint: Path) -> list[str]:
    missing = [name for name in CHECKPOINT_FILES if not (checkpoint / name).is_file()]
    has_weights = (
        any(checkpoint.glob("*.safetensors"))
        or any(checkpoint.glob("*.bin"))
        or any(checkpoint.glob("pytorch_model*"))
    )
    if not has_weights and not (checkpoint / "pytorch_model_fsdp_0").exists():
        missing.append("model weights")
    return missing


def checkpoint_state(checkpoint: Path) -> CheckpointState:
    state, problems = read_record(CheckpointState, checkpoint / TRAINER_STATE_FILE)
    state.problems = problems
    return state
