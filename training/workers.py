"""Where this process sits in a torchrun job, its device, and the per-process setup.

Training runs unchanged under ``torchrun --nproc_per_node N``: every worker trains on its own
shards (DistributedDataParallel), worker 0 exports and evaluates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from core.config import Config
from core.errors import UserError


@dataclass
class DistInfo:
    """Where this process sits in a torchrun job (world 1 = plain single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; read once at the entry point."""
    env = os.environ if env is None else env
    return DistInfo(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def pick_device(cfg: Config, info: DistInfo) -> torch.device:
    if cfg.training.device == "cuda" or (cfg.training.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("training.device = 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def seed_process(seed: int) -> None:
    """Seed torch's and numpy's global generators (model initialisation draws from them): every
    model built right after this call starts from the same weights."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def setup_process(cfg: Config, info: DistInfo) -> torch.device:
    """Threads, seeds and device of this process; under torchrun, join the process group
    (returns once every worker has joined). Idempotent: a second call changes nothing."""
    threads = cfg.training.threads or max(1, (os.cpu_count() or 1) // info.world)
    torch.set_num_threads(threads)
    seed_process(cfg.training.seed)
    device = pick_device(cfg, info)
    if info.enabled and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def join_workers(cfg: Config) -> DistInfo:
    """:func:`setup_process` for this process as torchrun describes it. A caller that reads
    shared state before training (the published model it warm-starts from) calls it first, so
    every worker reads after worker 0 has pulled it."""
    info = dist_info_from_env()
    setup_process(cfg, info)
    return info
