"""Where this process runs: rank, world size and device. The one place that parses `--gpus`.

Read from the environment the way torchrun sets it (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
`MASTER_PORT`); without those variables the process trains alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


def parse_gpus(gpus: str | None) -> list[int]:
    """`--gpus '0,2'` -> [0, 2]; '' or None -> [] (the CPU). Raises ValueError for malformed lists."""
    if not gpus or not gpus.strip():
        return []
    try:
        ids = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise ValueError(f"--gpus '{gpus}' is not a comma-separated list of GPU numbers") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus '{gpus}': GPU numbers must be distinct and non-negative")
    return ids


def check_gpus(ids: list[int]) -> None:
    """Raise ValueError with a one-line reason when a requested GPU does not exist."""
    if not ids:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ValueError(f"--gpus {','.join(map(str, ids))} asked for a GPU but this machine has none "
                         "(use --gpus '' to train on the CPU)")
    missing = [i for i in ids if i >= available]
    if missing:
        raise ValueError(f"--gpus asks for GPU {missing[0]} but this machine has {available} (0-{available - 1})")


def env_rank() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun-style variables, (0, 1, 0) when unset."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))
