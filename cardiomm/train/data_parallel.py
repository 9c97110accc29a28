"""Data-parallel local training over a site's devices with torch.distributed.

A site with several GPUs sets ``train.devices`` (site-owned, like ``train.device``): the
trainer then starts that many processes (NCCL on CUDA, one GPU each; gloo on the CPU), which
meet through a file rendezvous in a private temporary folder (no port to choose or open).
Every rank walks the *same* seeded sequence of global batches of ``train.batch_size`` slices
as a one-device run, and takes its share of each (``batch[rank::devices]``). After the
backward pass, the gradients of all ranks are summed in one flat all-reduce, each rank's loss
weighted by its share of the global batch, so the update is the gradient of the global
batch's mean loss, as on one device, up to floating-point summation order. (This is what
``DistributedDataParallel`` does, in one bucket after the backward pass instead of during
it; it keeps an exact mean when an epoch's short last batch leaves a rank without slices:
that rank runs a slice with weight zero.) Every rank then takes the same optimiser step, so
the weights stay identical; rank 0 validates, reports and hands the weights back.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, Dataset, RandomSampler

if TYPE_CHECKING:
    from cardiomm.train.config import TrainConfig
    from cardiomm.train.loop import TrainResult
    from cardiomm.train.run import TrainingRun

BACKENDS = ("auto", "nccl", "gloo")
_RESULT_FILE = "rank0.pt"


@dataclasses.dataclass
class DataParallelRank:
    """One process of a data-parallel run.

    Attributes:
        rank: this process (0 reports).
        world_size: processes in all (``train.devices``).
        device: where this rank trains.
    """

    rank: int
    world_size: int
    device: torch.device
    _shares: collections.deque = dataclasses.field(default_factory=collections.deque)
    global_count: int = 0

    def batch_sampler(
        self, dataset: Dataset, batch_size: int, generator: torch.Generator
    ) -> _RankShare:
        """This rank's share of the global batches a one-device DataLoader with
        ``shuffle=True`` and ``generator`` would draw (the same sampler, so the same order)."""
        batches = BatchSampler(RandomSampler(dataset, generator=generator), batch_size, False)
        return _RankShare(batches, self)

    def record_share(self, mine: int, batch: int) -> None:
        """Note that the next batch gives this rank ``mine`` of its ``batch`` slices."""
        self._shares.append((mine / batch if mine else 0.0, batch))

    def next_share(self) -> float:
        """The next batch's weight on this rank: its slices over the global batch's (0 for
        a stand-in slice); sets :attr:`global_count`."""
        share, self.global_count = self._shares.popleft()
        return share

    def synchronise(self, network: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Sum the ranks' (share-weighted) gradients and losses in one all-reduce; returns
        the global batch's mean loss, a () tensor. A parameter keeps ``grad=None`` only where
        no rank produced a gradient for it (the optimiser then leaves it, as on one device).

        The bucket is float32 (1 + P + sum of the P trainable parameters' sizes): the loss,
        a has-gradient flag per parameter, then the flattened gradients.
        """
        parameters = [p for p in network.parameters() if p.requires_grad]
        present = [p.grad is not None for p in parameters]
        pieces = [loss.detach().reshape(1).float()]
        pieces.append(torch.tensor(present, dtype=torch.float32, device=loss.device))
        pieces += [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in parameters
        ]
        bucket = torch.cat(pieces)
        dist.all_reduce(bucket, op=dist.ReduceOp.SUM)
        total_loss, flags = bucket[0], bucket[1 : 1 + len(parameters)]
        offset = 1 + len(parameters)
        for parameter, flag in zip(parameters, flags.tolist(), strict=True):
            size = parameter.numel()
            if flag > 0:
                values = bucket[offset : offset + size].view_as(parameter).to(parameter.dtype)
                if parameter.grad is None:
                    parameter.grad = values.clone()
                else:
                    parameter.grad.copy_(values)
            offset += size
        return total_loss


class _RankShare:
    """A rank's indices of every global batch; a rank left without any gets the batch's
    first slice as a stand-in with weight zero (every rank must join every all-reduce)."""

    def __init__(self, batches: BatchSampler, rank: DataParallelRank) -> None:
        self.batches = batches
        self.rank = rank

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            mine = batch[self.rank.rank :: self.rank.world_size]
            self.rank.record_share(len(mine), len(batch))
            yield mine or batch[:1]


def check_data_parallel(config: TrainConfig, private: bool) -> str:
    """The backend a ``config.devices``-process run uses; ValueError for what cannot run."""
    devices, backend = config.devices, config.distributed_backend
    if backend not in BACKENDS:
        raise ValueError(
            f"train.distributed_backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    if private:
        raise ValueError(
            f"train.devices={devices}: DP-SGD trains on one device (its per-example clipping "
            "and noise are not split across processes); set train.devices=1"
        )
    if config.batch_size < devices:
        raise ValueError(
            f"train.devices={devices} splits each batch of train.batch_size="
            f"{config.batch_size} slices; the batch must hold at least one slice per device"
        )
    cuda = config.device != "cpu" and torch.cuda.is_available()
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "gloo" and not cuda and devices > (os.cpu_count() or 1):
        raise ValueError(
            f"train.devices={devices} CPU processes on a machine with {os.cpu_count()} cores; "
            "each process needs a core of its own"
        )
    if backend == "nccl":
        if not cuda:
            raise ValueError("train.distributed_backend=nccl needs CUDA devices; use gloo on CPU")
        if torch.cuda.device_count() < devices:
            raise ValueError(
                f"train.devices={devices} but torch sees {torch.cuda.device_count()} CUDA "
                "device(s) (CUDA_VISIBLE_DEVICES)"
            )
    return backend


def train_data_parallel(run: TrainingRun) -> TrainResult:
    """Train ``run.network`` in place over ``run.config.devices`` processes (module
    docstring); DP-SGD (``run.privacy`` enabled) is refused.

    Returns:
        rank 0's result, with the global batch's losses and slices; ``run.network`` holds the
        trained weights (on the CPU).

    Raises:
        ValueError: a setting no data-parallel run can use (:func:`check_data_parallel`).
        RuntimeError: a rank failed; the message names it and carries its error.
    """
    config = run.config
    backend = check_data_parallel(config, run.private)
    # What every rank gets: the network on the CPU; neither callbacks nor privacy (refused).
    shared = dataclasses.replace(
        run, network=run.network.cpu(), on_step=None, privacy=None, accountant=None
    )
    with tempfile.TemporaryDirectory(prefix="cardiomm-ddp-") as folder:
        try:
            torch.multiprocessing.start_processes(
                _rank_main,
                args=(config.devices, backend, folder, shared),
                nprocs=config.devices,
                start_method="spawn",
            )
        except torch.multiprocessing.ProcessRaisedException as error:
            raise RuntimeError(f"data-parallel training failed: {error}") from None
        except torch.multiprocessing.ProcessExitedException as error:
            raise RuntimeError(
                f"data-parallel training failed: rank {error.error_index} exited with "
                f"code {error.exit_code}"
            ) from None
        outcome = torch.load(Path(folder) / _RESULT_FILE, weights_only=False)
    run.network.load_state_dict(outcome["state_dict"])
    return outcome["result"]


def _rank_main(rank: int, world_size: int, backend: str, folder: str, run: TrainingRun) -> None:
    """One rank: join the file rendezvous, train its share; rank 0 validates, reports and
    saves the weights for the launcher."""
    from cardiomm.train.loop import train_model

    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend,
        init_method=f"file://{os.path.join(folder, 'rendezvous')}",
        rank=rank,
        world_size=world_size,
    )
    try:
        mine = dataclasses.replace(
            run,
            validation_data=run.validation_data if rank == 0 else None,
            show_progress=run.show_progress and rank == 0,
            data_parallel=DataParallelRank(rank, world_size, device),
        )
        result = train_model(mine)
        if rank == 0:
            state = {key: value.detach().cpu() for key, value in run.network.state_dict().items()}
            torch.save({"state_dict": state, "result": result}, Path(folder) / _RESULT_FILE)
        dist.barrier()
    finally:
        dist.destroy_process_group()
