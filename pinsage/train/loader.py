"""Producer-consumer loader: workers build minibatches while the trainer trains.

Worker w builds steps s with s % producers == w, in order, into its own bounded queue;
the consumer takes step s from queue s % producers. Order is therefore fixed and every
batch is a function of (seed, step) alone (`pinsage.train.batch`), so the number and
kind of workers never changes what is trained on. Workers are threads (the default:
torch ops release the GIL, and on 2 cores they measured 1.6x faster than processes,
benchmarks/train_throughput.py) or processes (Python glue runs beside the trainer too;
worth it with spare cores). ``producers=0`` builds batches inline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.multiprocessing as mp

from pinsage.config import PipelineConfig
from pinsage.features import FeatureStore
from pinsage.graph.store import CSRGraph, Graph, load_graph
from pinsage.sampler.table import neighborhood_table
from pinsage.sampler.walks import Neighbors
from pinsage.seeding import derive_seed
from pinsage.train.batch import TrainBatch, make_batch
from pinsage.train.negatives import negative_distribution

__all__ = ["BatchLoader", "BatchMaker"]

log = logging.getLogger(__name__)

_TABLE_SEED = 0x7AB1E  # tags the per-epoch tables' seed apart from the batches'

# How long a worker waits on a full queue before re-checking the stop flag (seconds).
_POLL = 0.1


@dataclass
class BatchMaker:
    """Everything a worker needs to build batches.

    Threads and the inline path share the graph and features the trainer already
    loaded (`with_data`); pickling drops them, so a spawned process loads its own on
    first use (paths and plain config travel, arrays do not). A data-parallel replica
    ``rank`` of ``world_size`` builds its step ``s`` as draw ``s * world_size + rank``
    of the run's batch stream: replicas never share a batch, and one replica of one
    draws exactly the single-process batches.
    """

    graph_dir: Path
    cfg: PipelineConfig
    text_buckets: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        self._state = None
        self._tables: dict[int, tuple[Neighbors, Neighbors]] = {}
        self._tables_lock = threading.Lock()

    def with_data(self, graph: Graph, store: FeatureStore) -> BatchMaker:
        """Use an already loaded graph and feature store (no second load)."""
        power = self.cfg.train.negative_popularity_power
        self._state = (graph.csr, store, negative_distribution(graph.csr, power))
        return self

    def __getstate__(self) -> dict:
        local = ("_state", "_tables", "_tables_lock")
        return {k: v for k, v in self.__dict__.items() if k not in local}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def _epoch_tables(self, csr: CSRGraph, epoch: int) -> tuple[Neighbors, Neighbors]:
        """Every item's and context's neighbourhood for ``epoch``, drawn once.

        Seeded by (train seed, epoch) alone, so any worker builds the same tables; the
        lock makes threads share one build, and only two epochs are kept.
        """
        with self._tables_lock:
            if epoch not in self._tables:
                t0 = time.perf_counter()
                seed = derive_seed(self.cfg.train.seed, _TABLE_SEED, epoch)
                sampler = replace(self.cfg.sampler, seed=seed)
                self._tables[epoch] = (
                    neighborhood_table(csr, sampler),
                    neighborhood_table(csr, sampler, contexts=True),
                )
                for old in [e for e in self._tables if e < epoch - 1]:
                    del self._tables[old]
                log.info(
                    "epoch %d neighbourhood tables in %.1fs",
                    epoch,
                    time.perf_counter() - t0,
                )
            return self._tables[epoch]

    def __call__(self, step: int) -> TrainBatch:
        """Build batch ``step`` (loading the graph and features on first use)."""
        if self._state is None:
            graph = load_graph(self.graph_dir)
            self.with_data(
                graph, FeatureStore.from_graph(graph, text_buckets=self.text_buckets)
            )
        csr, store, probs = self._state
        epoch = step // self.cfg.train.steps_per_epoch + 1
        tables = None
        if self.cfg.train.neighborhoods == "epoch":
            tables = self._epoch_tables(csr, epoch)
        return make_batch(
            csr,
            store,
            self.cfg.sampler,
            self.cfg.train,
            step,
            epoch,
            probs,
            tables,
            draw=step * self.world_size + self.rank,
        )


def _produce(
    make: Callable[[int], TrainBatch],
    steps: range,
    out: queue.Queue,
    stop,
    pin: bool,
) -> None:
    try:
        torch.set_num_threads(1)  # the trainer owns the other cores
        for step in steps:
            batch = make(step)
            if pin:
                batch = batch.pin_memory()
            while not stop.is_set():
                try:
                    out.put(("batch", step, batch), timeout=_POLL)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                break
        # A process shares its batches' tensors through file descriptors that it
        # serves itself: stay alive until the consumer is done with them.
        stop.wait()
    except BaseException as exc:  # noqa: BLE001 - any failure must reach the consumer
        out.put(("error", -1, f"{type(exc).__name__}: {exc}"))
    finally:
        if hasattr(out, "cancel_join_thread"):
            out.cancel_join_thread()  # exit without flushing batches nobody will read


class BatchLoader:
    """Iterate minibatches ``start..stop-1`` from background workers.

    Use as a context manager: leaving it (normally, on an exception or on Ctrl-C) stops
    and joins every worker, so none is orphaned. ``wait_seconds`` accumulates the time
    the consumer spent waiting for a batch (the producer-wait fraction's numerator).
    """

    def __init__(
        self,
        make: BatchMaker,
        start: int,
        stop: int,
        *,
        producers: int = 1,
        prefetch: int = 4,
        kind: str = "thread",
        pin_memory: bool = False,
    ) -> None:
        self.make, self.start, self.stop = make, start, stop
        self.producers, self.prefetch, self.kind = producers, prefetch, kind
        self.pin_memory = pin_memory
        self.wait_seconds = 0.0
        self._workers: list = []
        self._queues: list = []
        self._stop_flag = None

    def __enter__(self) -> BatchLoader:
        if self.producers == 0:
            return self
        if self.kind == "process":
            ctx = mp.get_context("spawn")
            self._stop_flag = ctx.Event()
            new_queue, new_worker = ctx.Queue, ctx.Process
        else:
            self._stop_flag = threading.Event()
            new_queue, new_worker = queue.Queue, threading.Thread
        for w in range(self.producers):
            q = new_queue(maxsize=self.prefetch)
            first = self.start + (w - self.start) % self.producers
            steps = range(first, self.stop, self.producers)
            worker = new_worker(
                target=_produce,
                args=(self.make, steps, q, self._stop_flag, self.pin_memory),
                daemon=True,
            )
            worker.start()
            self._queues.append(q)
            self._workers.append(worker)
        log.info("started %d %s producer(s)", self.producers, self.kind)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop and join every worker (idempotent)."""
        if self._stop_flag is not None:
            self._stop_flag.set()
        for worker in self._workers:
            worker.join(timeout=5)
            if self.kind == "process" and worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
        self._workers, self._queues = [], []

    def __iter__(self) -> Iterator[TrainBatch]:
        for step in range(self.start, self.stop):
            t0 = time.perf_counter()
            if self.producers == 0:
                batch = self.make(step)
            else:
                kind, got, batch = self._get(self._queues[step % self.producers])
                if kind == "error":
                    raise RuntimeError(f"batch producer failed: {batch}")
                assert got == step, (
                    f"producer order broken: got step {got}, wanted {step}"
                )
            self.wait_seconds += time.perf_counter() - t0
            yield batch

    def _get(self, q) -> tuple:
        while True:
            try:
                return q.get(timeout=1.0)
            except queue.Empty:
                if not all(w.is_alive() for w in self._workers):
                    raise RuntimeError("a batch producer died without a word") from None
