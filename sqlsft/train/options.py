"""What a `sqlsft train` call asks for: the command line's options, as the stage takes them."""

from dataclasses import dataclass, field


@dataclass
class TrainOptions:
    preset: str | None = None
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    model: str | None = None
    dataset: str | None = None
    max_steps: int | None = None
    gpus: str | None = None
    cpu_processes: int | None = None
    strategy: str = "ddp"
    nodes: int = 1
    node_rank: int = 0
    main_ip: str | None = None
    main_port: int | None = None
    run_name: str | None = None
    resume: str | None = None  # None: a new run; "": the newest run that stopped early; else a run name
    report_to: str | None = None
    dry_run: bool = False
    merge_adapter: bool = True  # False (--no-merge): a LoRA run keeps adapter/ and writes no merged model/
    eval_rows: int | None = None  # --eval-rows: execution accuracy on this many validation rows at each save
    eval_at_start: bool = False  # --eval-at-start: and at step 0
    load_best: bool = False  # --load-best: model/ is the checkpoint with the best execution accuracy
