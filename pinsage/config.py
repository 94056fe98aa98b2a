"""Configuration as plain frozen dataclasses, loaded from YAML and validated.

One dataclass per concern, nested in `PipelineConfig`. Unknown keys, wrong types and
out-of-range values raise `ConfigError` naming the key (and the nearest valid one).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from pinsage.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "DataConfig",
    "EmbedConfig",
    "EvalConfig",
    "ExecutionConfig",
    "IndexConfig",
    "ModelConfig",
    "PipelineConfig",
    "SamplerConfig",
    "SynthConfig",
    "TrainConfig",
    "load_config",
    "load_section",
]

T = TypeVar("T")


@dataclass(frozen=True)
class SamplerConfig:
    """Random-walk importance sampling (DESIGN.md "Importance neighbourhood")."""

    num_walks: int = 100  # walks per seed; more = stabler importance weights, slower
    walk_length: int = 3  # most traversals (item -> context -> item) per walk
    restart: float = 0.5  # probability that a walk ends after each traversal
    top_k: int = 20  # T: neighbours kept per node, by visit count
    num_layers: int = 1  # K: convolution layers, hence sampled hops per seed
    # Importance weights = visits / neighbour degree ** degree_power, renormalised:
    # walk visits favour popular neighbours by sqrt(degree); 0.5 turns importance
    # pooling into the symmetric-normalised filter (LightGCN, GF-CF), 0 is the paper's.
    degree_power: float = 0.0
    seed: int = 0  # every random draw flows from this
    # Evaluation and bulk inference draw each node's neighbourhood once, not once a
    # step, so they can afford more walks and wider neighbourhoods (None: as above).
    # A user's neighbourhood is its history: top_k truncates it (Gowalla: 20 -> 400
    # neighbours at inference, recall@20 0.138 -> 0.153 with the same weights).
    infer_num_walks: int | None = 500
    infer_top_k: int | None = 200

    def __post_init__(self) -> None:
        names = ("num_walks", "walk_length", "top_k", "num_layers")
        for name in (*names, "infer_num_walks", "infer_top_k"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"sampler.{name} must be >= 1, got {value}")
        if not 0.0 <= self.restart <= 1.0:
            raise ConfigError(f"sampler.restart must be in [0, 1], got {self.restart}")
        if not 0.0 <= self.degree_power <= 2.0:
            raise ConfigError(
                f"sampler.degree_power must be in [0, 2], got {self.degree_power}"
            )

    def for_inference(self) -> SamplerConfig:
        """The sampler that evaluation and bulk inference draw neighbourhoods with."""
        return replace(
            self,
            num_walks=self.infer_num_walks or self.num_walks,
            top_k=self.infer_top_k or self.top_k,
        )


AGGREGATORS = ("importance", "mean", "max", "attention")
LOSSES = ("margin", "softmax")
OBJECTIVES = ("item", "context", "both")
NEIGHBORHOODS = ("batch", "epoch")
ID_INITS = ("normal", "spectral")


@dataclass(frozen=True)
class ModelConfig:
    """The PinSage network (DESIGN.md "Convolution"); layers = sampler.num_layers."""

    dim: int = 64  # input projection width (features and ID embedding)
    hidden_dim: int = 64  # width of the messages Q h_v
    out_dim: int = 64  # embedding size; 64 is LightGCN's on Gowalla
    aggregator: str = "importance"  # importance | mean | max | attention (ablations)
    heads: int = 2  # attention heads (attention aggregator only)
    dropout: float = 0.0  # on conv inputs; the graphs we target overfit little
    # Learned per-item ID embedding beside the features (None: on). With the spectral
    # start below it doubles recall@20 on planted clusters with features (0.143 ->
    # 0.276; the demo's data 0.110 -> 0.396, above item-kNN and GF-CF). Items without
    # interactions keep a zero ID row and are embedded from their features; false
    # (features only) keeps the newest items of a MovieLens-like catalogue in the
    # recommendations, which the IDs crowd out (docs/training.md "Cold start").
    id_embedding: bool | None = None
    context_id_embedding: bool = False  # learned per-user vector beside its items
    # How ID embeddings start: "spectral" (the item's coordinates on R~'s top
    # singular vectors: training starts from the graph's smooth signals, as spectral
    # CF filters end; seconds of ARPACK at 40k items) or "normal" (random).
    id_init: str = "spectral"
    # Share of training items seen as cold (neighbourhood and ID vector dropped), so
    # that the feature path alone carries an item some of the time: items without
    # interactions yet (cold start) are then recommended. None: 0.2 when the graph
    # has item features (measured on planted clusters: cold recall@20 ~ warm), else 0.
    cold_dropout: float | None = None
    # Add the top layer's input to the output (an item's own vector, a context's
    # importance-pooled items), as LightGCN sums its layers: the scores keep the
    # ID embeddings' linear, spectral start, and the head learns a correction. The
    # head's last weight starts at zero, so training starts from the filter.
    # Gowalla validation recall@20 after one epoch: 0.1671 with, 0.1578 without.
    # Needs out_dim == dim.
    residual: bool = True
    # The most hashed text token buckets (EmbeddingBag rows): a run uses a power of
    # two >= 8x its graph's distinct tokens up to this, and records it in its config.
    text_buckets: int = 2**18

    def __post_init__(self) -> None:
        for name in ("dim", "hidden_dim", "out_dim", "heads", "text_buckets"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"model.{name} must be >= 1, got {getattr(self, name)}"
                )
        if self.aggregator not in AGGREGATORS:
            raise ConfigError(
                f"model.aggregator must be one of {AGGREGATORS}, "
                f"got '{self.aggregator}'"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.cold_dropout is not None and not 0.0 <= self.cold_dropout < 1.0:
            raise ConfigError(
                f"model.cold_dropout must be in [0, 1), got {self.cold_dropout}"
            )
        if self.residual and self.out_dim != self.dim:
            raise ConfigError(
                f"model.residual adds the dim-wide input to the output, so "
                f"model.out_dim ({self.out_dim}) must equal model.dim ({self.dim}); "
                "set them equal, or model.residual: false"
            )
        if self.id_init not in ID_INITS:
            raise ConfigError(
                f"model.id_init must be one of {ID_INITS}, got '{self.id_init}'"
            )


@dataclass(frozen=True)
class TrainConfig:
    """The training loop, examples, negatives and loss (DESIGN.md "Loss")."""

    epochs: int = 5  # curriculum: epoch n adds n-1 hard negatives per query
    steps_per_epoch: int = 100  # minibatches per epoch
    batch_size: int = 512  # positive pairs per minibatch
    objective: str = "context"  # item (q, i) pairs, context (u, i) pairs, or both
    loss: str = "softmax"  # margin (the paper's) or softmax (sampled, ItemSage)
    margin: float = 0.1  # max-margin delta
    temperature: float = 0.05  # softmax temperature tau on unit vectors
    num_random_negatives: int = 500  # shared by the minibatch, as in the paper
    # Random negatives ~ popularity^beta: 0 uniform; the softmax corrects by log q.
    negative_popularity_power: float = 0.0
    # Also use the minibatch's engaged items as shared negatives (popular ones, met
    # as often as they are engaged; mixed log q correction).
    in_batch_negatives: bool = True
    # Where training neighbourhoods come from: fresh walks for every minibatch
    # ("batch", the paper's producer) or one table of every node's neighbourhood per
    # epoch, re-drawn each epoch ("epoch": a step is then a lookup, several times
    # cheaper on small graphs; memory nodes x top_k).
    neighborhoods: str = "batch"
    # Hide each (context, item) pair's item from the context's own neighbourhood:
    # its walks start at that engagement, so the model would otherwise learn to find
    # items already pooled into the query, which held-out items never are.
    hide_positives: bool = True
    # Weight of the cold-start loss (`in_batch_softmax_loss`): each pair's item,
    # embedded from its features alone as an item without interactions is, must
    # outrank the minibatch's other engaged items, which share its popularity, so the
    # feature path learns whom an item suits rather than how popular items like it
    # were in training. Needs item features. 0: off.
    cold_weight: float = 0.0
    max_hard_negatives: int = 3  # curriculum cap per query
    # Hard negatives come from this band of a query's walk-visit (PPR) ranking,
    # as a share of the catalogue: the paper's ranks 2000-5000 of billions are "related
    # but not the positive"; a relative band carries that to any catalogue size.
    hard_band: tuple[float, float] = (0.01, 0.05)
    lr: float = 0.005
    weight_decay: float = 0.0
    warmup_steps: int = 20  # linear warm-up, then cosine decay to lr / 10
    grad_clip: float = 1.0
    prefetch: int = 4  # batches queued ahead per worker
    eval_every: int = 0  # steps between evaluations (0: at the end of each epoch)
    checkpoint_every: int = 50  # steps between checkpoints
    # End the run after this step, the schedule (warm-up, decay) still spanning every
    # epoch: the refit of a run whose validation curve peaked mid-schedule stops
    # where that peak was. null: train every epoch.
    stop_step: int | None = None
    seed: int = 0

    @property
    def last_step(self) -> int:
        """The step the run ends at: every epoch's, or ``stop_step`` if sooner."""
        total = self.epochs * self.steps_per_epoch
        return total if self.stop_step is None else min(self.stop_step, total)

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "prefetch"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"train.{name} must be >= 1, got {getattr(self, name)}"
                )
        for name in (
            "num_random_negatives",
            "max_hard_negatives",
            "warmup_steps",
            "eval_every",
            "checkpoint_every",
            "cold_weight",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"train.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.loss not in LOSSES:
            raise ConfigError(f"train.loss must be one of {LOSSES}, got '{self.loss}'")
        if self.neighborhoods not in NEIGHBORHOODS:
            raise ConfigError(
                f"train.neighborhoods must be one of {NEIGHBORHOODS}, "
                f"got '{self.neighborhoods}'"
            )
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"train.objective must be one of {OBJECTIVES}, got '{self.objective}'"
            )
        lo, hi = self.hard_band
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(
                f"train.hard_band must satisfy 0 <= lo < hi <= 1, got {self.hard_band}"
            )
        if self.lr <= 0 or self.temperature <= 0:
            raise ConfigError("train.lr and train.temperature must be > 0")
        if self.stop_step is not None and self.stop_step < 1:
            raise ConfigError(f"train.stop_step must be >= 1, got {self.stop_step}")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of the synthetic generator (every field is recorded in the folder)."""

    num_items: int = 2_000
    num_users: int = 1_000
    num_edges: int = 40_000  # distinct (user, item) pairs before the test split
    num_clusters: int = 10
    # Share of draws inside the user's own cluster. Repeated pairs are dropped, and they
    # repeat more inside a cluster, so in dense graphs the kept share is a little lower.
    in_cluster: float = 0.85
    zipf: float = 0.9  # popularity exponent: item of popularity rank r weighs r^-zipf
    # Clusters each user is drawn to (its own and interests - 1 others, equally):
    # overlapping interests, so a user vector must mix more than one cluster.
    interests: int = 2
    # Sub-clusters of each cluster; a user prefers one in each of its clusters and
    # an in-cluster draw goes there with probability in_subcluster, so a model has
    # to learn more than cluster membership. (1, 1, 0.0: one cluster a user, as
    # benchmarks/quality.py's synthetic graph keeps for its published figures.)
    subclusters: int = 4
    in_subcluster: float = 0.6
    test_fraction: float = 0.2  # share of each user's interactions held out
    feature_dim: int = 16  # length of the dense `embedding` feature
    feature_noise: float = 1.0  # std of the noise around the cluster centroid
    # Share of items held out of training entirely (features and test interactions
    # kept): measures cold start, i.e. items embedded from their features alone.
    cold_items: float = 0.0
    string_ids: bool = False  # external ids as strings ("i123") instead of int64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "num_items",
            "num_users",
            "num_edges",
            "num_clusters",
            "feature_dim",
            "interests",
            "subclusters",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"synth: {name} must be >= 1, got {getattr(self, name)}"
                )
        if self.num_clusters > min(self.num_items, self.num_users):
            raise ConfigError(
                f"synth: num_clusters ({self.num_clusters}) must not exceed num_items "
                f"({self.num_items}) or num_users ({self.num_users})"
            )
        if self.num_clusters * self.subclusters > self.num_items:
            raise ConfigError(
                f"synth: num_clusters x subclusters ({self.num_clusters} x "
                f"{self.subclusters}) must not exceed num_items ({self.num_items})"
            )
        if self.interests > self.num_clusters:
            raise ConfigError(
                f"synth: interests ({self.interests}) must not exceed num_clusters "
                f"({self.num_clusters})"
            )
        for name in ("in_cluster", "in_subcluster", "test_fraction", "cold_items"):
            closed = name.startswith("in_")  # a probability: 1 is allowed
            if not 0.0 <= getattr(self, name) < 1.0 + closed:
                raise ConfigError(
                    f"synth: {name} must be in [0, 1{']' if closed else ')'}, "
                    f"got {getattr(self, name)}"
                )
        if self.num_edges > 0.5 * self.num_items * self.num_users:
            raise ConfigError(
                f"synth: num_edges ({self.num_edges}) exceeds half of all "
                f"{self.num_users} x {self.num_items} user-item pairs; ask for fewer "
                "edges or more users/items"
            )
        if self.zipf < 0:
            raise ConfigError(f"synth: zipf must be >= 0, got {self.zipf}")


DATA_FORMATS = ("folder", "lightgcn", "movielens", "parquet")
IMPORT_FORMATS = DATA_FORMATS[1:]  # `data import --format`
FEATURE_KINDS = (
    "dense",
    "vector",
    "categorical",
    "text",
)  # pinsage.graph.feature_columns
MAX_K = 1000  # DESIGN.md: a lookup k outside 1..1000 is bad input
EMBED_ENGINES = ("auto", "ray", "local")
PRODUCERS = ("thread", "process")
DEVICE = re.compile(r"cpu|cuda(:\d+)?")
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")
BASELINES = ("popularity", "itemknn", "gfcf", "content")  # pinsage.eval.baselines


@dataclass(frozen=True)
class DataConfig:
    """Where `pinsage pipeline` takes its interactions from."""

    # None: generate them (the `synth` section); else a path, relative to the
    # working directory: a data folder (format "folder") or a source to import.
    path: str | None = None
    format: str = "folder"  # folder | lightgcn | movielens | parquet
    # Share of each user's training interactions held out for model selection
    # (evaluation during training, the checkpoint kept), so that the test file is
    # read once, at the end. 0: no validation split, and nothing is evaluated while
    # training. The held ones are a user's latest when there are timestamps.
    validation_share: float = 0.1
    validation_seed: int = 0
    # Imported sources: share of each user's interactions held out as the test split
    # (the latest where there are timestamps). None: MovieLens 0.2, a Parquet source
    # its own test.parquet (or no test split), LightGCN its own split.
    test_fraction: float | None = None
    # MovieLens: only ratings at or above this are positives (4 of 5 stars is the
    # usual choice); None keeps every rating, liked or not.
    min_rating: float | None = None
    # MovieLens: the rating is the edge weight (walks follow well-rated items more
    # often); false: every kept rating weighs 1.
    rating_weights: bool = True
    # Imported sources with item features: this share of the items is made cold
    # (`pinsage.data.cold`: training rows dropped, features and test rows kept).
    cold_items: float = 0.0

    def __post_init__(self) -> None:
        if self.format not in DATA_FORMATS:
            raise ConfigError(
                f"data.format must be one of {DATA_FORMATS}, got '{self.format}'"
            )
        if not 0.0 <= self.validation_share < 1.0:
            raise ConfigError(
                f"data.validation_share must be in [0, 1), got {self.validation_share}"
            )
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(
                f"data.test_fraction must be in [0, 1), got {self.test_fraction}"
            )
        if not 0.0 <= self.cold_items < 1.0:
            raise ConfigError(
                f"data.cold_items must be in [0, 1), got {self.cold_items}"
            )
        if not self.rating_weights and self.format != "movielens":
            raise ConfigError(
                f"data.rating_weights applies to format movielens only, not "
                f"'{self.format}'; remove it or set data.format: movielens"
            )
        if self.min_rating is not None and self.format != "movielens":
            raise ConfigError(
                f"data.min_rating applies to format movielens only, not "
                f"'{self.format}'; remove it or set data.format: movielens"
            )


@dataclass(frozen=True)
class EmbedConfig:
    """Bulk inference in `pinsage pipeline` (the options of `pinsage embed`)."""

    # auto: local while the graph fits comfortably in memory and no cluster is given,
    # else ray; ray: map / join / reduce on Ray; local: in process.
    engine: str = "auto"
    contexts: bool = True  # user vectors too: `query --user`, GET /recommend

    def __post_init__(self) -> None:
        if self.engine not in EMBED_ENGINES:
            raise ConfigError(
                f"embed.engine must be one of {EMBED_ENGINES}, got '{self.engine}'"
            )


@dataclass(frozen=True)
class IndexConfig:
    """The nearest-neighbour index in `pinsage pipeline` (`pinsage index build`)."""

    kind: str = "auto"  # auto: exact up to 50k items, HNSW up to 2M, IVF-PQ beyond

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ConfigError(
                f"index.kind must be one of {INDEX_KINDS}, got '{self.kind}'"
            )


@dataclass(frozen=True)
class EvalConfig:
    """What the evaluation reports beside the model (`pinsage eval --baselines`)."""

    # Training-free baselines ranked by the same protocol, so that every run shows
    # whether the GNN earns its keep on this data (`pinsage.eval.baselines`); add
    # content (item-kNN over item features, needs them) to judge cold items.
    baselines: tuple[str, ...] = ("popularity", "itemknn", "gfcf")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ConfigError(
                f"eval.baselines: unknown {unknown}; choose from {list(BASELINES)}"
            )


@dataclass(frozen=True)
class ExecutionConfig:
    """How and where the jobs run, not what they compute (docs/operations.md).

    Every key has a CLI override of the same name (`train --device`, `--workers`,
    ...). None enters the pipeline's config hash: the same run may move to a GPU or a
    cluster, and resume there. ``workers`` does change the model (each replica draws
    its own batches), so a run records it and resumes only with the same count
    (`pinsage.train.loop.resume_checkpoint`).
    """

    device: str = "auto"  # auto (cuda when there is one), cpu, cuda or cuda:N
    producer: str = "thread"  # kind of batch producers: thread or process
    # Batch producers per trainer; 0 builds batches in the training loop.
    producers: int = 1
    # torch intra-op threads of the trainer; None: the CPUs this process may use
    # (affinity, cgroup quota) less the producers (`pinsage.threads`).
    torch_threads: int | None = None
    # Data-parallel training replicas: > 1 trains under Ray Train (DDP), with
    # train.batch_size pairs per replica and step; 1 needs no Ray.
    workers: int = 1
    # The Ray cluster of the Ray jobs (data-parallel training, the Ray embedding
    # engine): "auto", "ray://host:10001", ...; null: $RAY_ADDRESS when set (as
    # under `ray job submit`), else a local Ray on this machine.
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.producer not in PRODUCERS:
            raise ConfigError(
                f"execution.producer must be one of {PRODUCERS}, got '{self.producer}'"
            )
        if self.producers < 0:
            raise ConfigError(f"execution.producers must be >= 0, got {self.producers}")
        if self.workers < 1:
            raise ConfigError(f"execution.workers must be >= 1, got {self.workers}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(
                "execution.torch_threads must be >= 1 (or null), "
                f"got {self.torch_threads}"
            )
        if self.device != "auto" and not DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"execution.device must be auto, cpu, cuda or cuda:N, "
                f"got '{self.device}'"
            )


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's configuration: one section per stage."""

    # Keys moved since a release wrote them: old "section.key" -> new. Configs and
    # runs that use the old place still load, with a warning (`load_config`).
    MOVED: ClassVar[dict[str, str]] = {
        "train.num_workers": "execution.producers",
        "train.producers": "execution.producers",
        "train.torch_threads": "execution.torch_threads",
    }

    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def executed(self, **changes: Any) -> PipelineConfig:
        """The same config run another way: ``execution`` keys ``changes`` replaced.

        `ConfigError` for a value the section rejects, as if it were in YAML.
        """
        return replace(self, execution=replace(self.execution, **changes))

    def as_plain(self, *, execution: bool = True) -> dict:
        """The config as plain data (tuples as lists), as a run's config.yaml holds it.

        Without ``execution`` that section is left out: what makes two runs the same
        run, whatever machine or cluster runs them (`ExecutionConfig`).
        """
        plain = json.loads(json.dumps(asdict(self)))
        if not execution:
            del plain["execution"]
        return plain


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # YAML writes 1 for 1.0
    if isinstance(annotation, type) and not is_dataclass(annotation):
        if not isinstance(value, annotation) or (
            annotation is int and isinstance(value, bool)
        ):
            raise ConfigError(
                f"{where}: expected {annotation.__name__}, got {type(value).__name__} "
                f"({value!r})"
            )
    return value


def load_section(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad types."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a mapping of keys, got {type(raw).__name__}"
        )
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    values = {}
    for key, value in _moved(cls, raw, where).items():
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(
                f"{where}: unknown key '{key}'{hint} (allowed: {allowed})"
            )
        annotation = hints[key]
        if is_dataclass(annotation):
            values[key] = load_section(annotation, value, f"{where}.{key}")
        elif isinstance(annotation, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if value is not None:
                values[key] = _check_type(value, options[0], f"{where}.{key}")
            else:
                values[key] = None
        elif typing.get_origin(annotation) is tuple:
            item_type = typing.get_args(annotation)[0]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}.{key}: expected a list, got {value!r}")
            values[key] = tuple(
                _check_type(v, item_type, f"{where}.{key}") for v in value
            )
        else:
            values[key] = _check_type(value, annotation, f"{where}.{key}")
    try:
        return cls(**values)
    except ConfigError as exc:  # a value check: say which file (and section) it is in
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc


def _moved(cls: type, raw: dict, where: str) -> dict:
    """``raw`` with the keys ``cls.MOVED`` lists in their new places (warned).

    `ConfigError` when a key is set in both places: which one is meant is not
    for us to guess.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for old, new in getattr(cls, "MOVED", {}).items():
        old_section, old_key = old.split(".")
        new_section, new_key = new.split(".")
        source = out.get(old_section)
        if not isinstance(source, dict) or old_key not in source:
            continue
        target = out.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue  # load_section names the bad section
        if new_key in target:
            raise ConfigError(
                f"{where}: both '{old}' and '{new}' are set; '{old}' is the old "
                f"place of '{new}': keep '{new}' only."
            )
        log.warning("%s: '%s' is now '%s'; move the key", where, old, new)
        target[new_key] = source.pop(old_key)
    return out


def load_config(path: Path) -> PipelineConfig:
    """Load and validate a YAML pipeline config."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return load_section(PipelineConfig, raw, str(path))
