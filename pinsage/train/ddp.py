"""Where a training process sits in a run: alone, or one replica of a DDP run.

The loop (`pinsage.train.loop.fit`) is the same for both; a `Replica` supplies the few
places where they differ. The single-process `Replica` leaves everything as it is.
A `DDPReplica` (one per process of a ``torch.distributed`` group, which Ray Train sets
up, `pinsage.train.distributed`) keeps the replicas identical:

- dense weights: ``DistributedDataParallel`` averages their gradients during backward
  (it broadcasts rank 0's weights at construction, too);
- sparse embedding tables (SparseAdam's rows, `sparse_parameters`): DDP leaves them
  out, and `all_reduce_sparse_grads` averages their row gradients after backward.
  Sparse all-reduce works on every backend (NCCL has no sparse collectives), keeps
  each step's cost proportional to the rows a batch touched (dense gradients of a
  2^18-row text table would be 64 MB a step), and keeps SparseAdam's lazy updates,
  so a data-parallel checkpoint has exactly the single-process layout;
- dropout: every replica draws from a generator reseeded each step from (seed, rank,
  step): replicas drop different units, and a resumed run needs no per-replica
  random state in the checkpoint.
"""

from __future__ import annotations

import hashlib

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pinsage.seeding import derive_seed
from pinsage.train.optimizers import sparse_parameters

__all__ = ["DDPReplica", "Replica", "all_reduce_sparse_grads", "fingerprint"]

_DROPOUT_SEED = 0xD80F  # tags the per-step dropout seeds apart from the batches'


class Replica:
    """A single-process run: rank 0 of 1, and every hook leaves things as they are."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run (config, metrics, checkpoints)."""
        return self.rank == 0

    def wrap(self, loss: nn.Module) -> nn.Module:
        """The module the step calls (``loss`` wraps the model, `BatchLoss`)."""
        return loss

    def begin_step(self, step: int) -> None:
        """Called before each step's forward."""

    def after_backward(self) -> None:
        """Called between backward and the optimizer step."""

    def mean(self, value: Tensor) -> float:
        """``value`` (a scalar) averaged over the replicas."""
        return value.item()

    def fingerprints(self, model: nn.Module, step: int) -> list[str] | None:
        """Every replica's `fingerprint` of ``model`` after ``step``, when checked."""
        return None


def fingerprint(model: nn.Module) -> str:
    """A 16-hex-digit hash of every parameter's and buffer's bytes, in order."""
    digest = hashlib.blake2b(digest_size=8)
    for tensor in model.state_dict().values():
        flat = tensor.detach().contiguous().flatten()
        digest.update(flat.view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def all_reduce_sparse_grads(params: list[nn.Parameter], world_size: int) -> None:
    """Average the replicas' sparse (row) gradients of ``params``, in place.

    Each replica's gradient is coalesced to (rows (n,), values (n, D)); the replicas
    all-gather them (padded to the longest, as collectives need equal shapes), and
    each builds the same sum in the same rank order, divided by ``world_size`` as DDP
    divides the dense ones. A parameter that no replica touched keeps no gradient.
    Every replica must call this with the same parameters in the same order.
    """
    if not params:
        return
    device = params[0].device
    grads = [p.grad.coalesce() if p.grad is not None else None for p in params]
    counts = torch.tensor(
        [g.indices().shape[1] if g is not None else 0 for g in grads], device=device
    )
    gathered = [torch.empty_like(counts) for _ in range(world_size)]
    dist.all_gather(gathered, counts)
    sizes = torch.stack(gathered).T.tolist()  # (params, world)
    for param, grad, size in zip(params, grads, sizes, strict=True):
        longest = max(size)
        if longest == 0:
            param.grad = None
            continue
        rows = torch.zeros(longest, dtype=torch.long, device=device)
        values = torch.zeros(
            longest, *param.shape[1:], dtype=param.dtype, device=device
        )  # (n_max, D)
        if grad is not None:
            mine = grad.indices().shape[1]
            rows[:mine], values[:mine] = grad.indices()[0], grad.values()
        all_rows = [torch.empty_like(rows) for _ in range(world_size)]
        all_values = [torch.empty_like(values) for _ in range(world_size)]
        dist.all_gather(all_rows, rows)
        dist.all_gather(all_values, values)
        rows = torch.cat([r[:n] for r, n in zip(all_rows, size, strict=True)])
        values = torch.cat([v[:n] for v, n in zip(all_values, size, strict=True)])
        summed = torch.sparse_coo_tensor(rows.unsqueeze(0), values, param.shape)
        param.grad = summed.coalesce() / world_size


class DDPReplica(Replica):
    """Replica ``rank`` of ``world_size`` in an initialised process group.

    ``verify_every`` > 0: every that many steps the replicas all-gather a
    `fingerprint` of their parameters (the metrics record them as
    ``replica_fingerprints``), and a mismatch stops the run. It costs one pass over
    every weight, so it is meant for tests and debugging.
    """

    def __init__(
        self, rank: int, world_size: int, seed: int, verify_every: int = 0
    ) -> None:
        self.rank, self.world_size = rank, world_size
        self.seed, self.verify_every = seed, verify_every
        self._sparse: list[nn.Parameter] = []

    def wrap(self, loss: nn.Module) -> nn.Module:
        """``loss`` under DDP, its sparse embedding tables left to `after_backward`."""
        sparse = sparse_parameters(loss)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            loss, list(sparse)
        )
        self._sparse = list(sparse.values())
        device = next(loss.parameters()).device
        return DistributedDataParallel(
            loss,
            device_ids=[device] if device.type == "cuda" else None,
            # Parts of the model sit out some objectives (the context tower under
            # the item objective): DDP must not wait for their gradients.
            find_unused_parameters=True,
            # The only buffers are feature statistics, identical everywhere.
            broadcast_buffers=False,
        )

    def begin_step(self, step: int) -> None:
        """Reseed dropout from (seed, rank, step) (see the module docstring)."""
        torch.manual_seed(derive_seed(self.seed, _DROPOUT_SEED, self.rank, step))

    def after_backward(self) -> None:
        """Average the sparse tables' gradients (DDP did the dense ones)."""
        all_reduce_sparse_grads(self._sparse, self.world_size)

    def mean(self, value: Tensor) -> float:
        """``value`` averaged over the replicas (an all-reduce)."""
        total = value.detach().float().clone()
        dist.all_reduce(total)
        return total.item() / self.world_size

    def fingerprints(self, model: nn.Module, step: int) -> list[str] | None:
        """All replicas' fingerprints every ``verify_every`` steps (a collective)."""
        if not self.verify_every or (step + 1) % self.verify_every:
            return None
        found: list = [None] * self.world_size
        dist.all_gather_object(found, fingerprint(model))
        if len(set(found)) > 1:  # our bug, not the user's: stop before it spreads
            raise RuntimeError(f"replicas diverged after step {step + 1}: {found}")
        return found
