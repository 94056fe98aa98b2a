"""Typed manifests of what stages hand on: data, graph, embeddings, index, run root.

Each is a frozen dataclass: the stage that writes the artifact builds one and
publishes ``to_json()`` (`pinsage.atomic.publish`); the stages that read it get one
back from ``read(folder)`` (None until the folder is complete) instead of a
string-keyed dict, so a misspelt key is an AttributeError at the reader, not a
silent None. The files stay plain JSON: keys written by a newer version are
ignored, keys this version added are optional, and a key a reader needs that is
missing or of the wrong type is a `DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from pinsage.atomic import MANIFEST, complete_manifest, current_manifest
from pinsage.errors import DataError

__all__ = [
    "EMBEDDINGS_VERSION",
    "DataManifest",
    "EmbeddingsManifest",
    "GraphManifest",
    "IndexManifest",
    "RootManifest",
    "StageRecord",
]

# The embeddings folder's layout (``format_version``; `pinsage.infer.output`).
EMBEDDINGS_VERSION = 1


class _Manifest:
    """JSON in and out for the dataclasses below."""

    # JSON key -> field, where the file's key is not an identifier.
    KEYS: ClassVar[dict[str, str]] = {}
    # A key's former name -> field: read from files an older version wrote.
    FORMER: ClassVar[dict[str, str]] = {}

    def to_json(self) -> dict:
        """The manifest as plain JSON data (what ``manifest.json`` holds)."""
        names = {v: k for k, v in self.KEYS.items()}
        return {names.get(k, k): v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict, where: Path | str) -> Self:
        """The manifest in ``raw`` (read from ``where``); `DataError` if malformed."""
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        renamed = cls.KEYS | cls.FORMER
        for key, value in sorted(raw.items(), key=lambda kv: kv[0] in cls.FORMER):
            name = renamed.get(key, key)  # the current key wins over a former one
            if name in known and name not in values:
                values[name] = value
        for name, spec in known.items():
            required = (
                spec.default is dataclasses.MISSING
                and spec.default_factory is dataclasses.MISSING
            )
            if name not in values and required:
                raise DataError(
                    f"{where}: no '{name}'; rewrite it with the command that "
                    "wrote it (--overwrite)."
                )
            if name in values and not _fits(values[name], hints[name]):
                expected = getattr(hints[name], "__name__", str(hints[name]))
                raise DataError(
                    f"{where}: '{name}' is {values[name]!r}, expected {expected}; "
                    "rewrite it with the command that wrote it (--overwrite)."
                )
        return cls(**values)

    @classmethod
    def read(cls, folder: Path) -> Self | None:
        """The manifest of the complete ``folder``; None while it is not complete."""
        raw = complete_manifest(folder)
        return None if raw is None else cls.from_json(raw, Path(folder) / MANIFEST)

    @classmethod
    def read_current(cls, folder: Path, key: dict) -> Self | None:
        """`read` when ``folder`` was made from ``key`` (`current_manifest`)."""
        raw = current_manifest(folder, key)
        return None if raw is None else cls.from_json(raw, Path(folder) / MANIFEST)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (outer types only)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
    for option in options or (hint,):
        if option is type(None) and value is None:
            return True
        if option is Any:
            return True
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, int | float):
            return not isinstance(value, bool)
        if base is int and isinstance(value, bool):
            continue
        if isinstance(base, type) and isinstance(value, base):
            return True
    return False


@dataclass(frozen=True)
class DataManifest(_Manifest):
    """A data folder: the parameters it was written with, and its tables.

    ``params`` (the generator's config, or the source files' sha256 and the import
    options) is what makes a rerun a no-op; ``tables`` maps each
    ``{name}.parquet`` to its row count (and columns).
    """

    params: dict
    tables: dict


@dataclass(frozen=True)
class GraphManifest(_Manifest):
    """A graph folder: its counts, id types, features and what it was built from.

    ``sources`` (each input's path and sha256) and ``options`` (columns, feature
    kinds, the test split) are what `pinsage graph build` compares to skip a
    rebuild; ``features`` are `pinsage.graph.feature_columns.FeatureSpec` records.
    """

    format_version: int
    num_items: int
    num_contexts: int
    num_edges: int
    weighted: bool  # any edge weight other than 1
    id_types: dict  # {"item": "int" | "string", "context": ...}
    features: list = field(default_factory=list)
    sources: dict | None = None
    options: dict | None = None
    interactions_read: int | None = None
    duplicates_merged: int | None = None
    dropped_unknown_items: int | None = None  # not in the items file
    isolated_items: int | None = None  # in the items file, never engaged
    dtypes: dict = field(default_factory=dict)
    build_seconds: float | None = None
    sort_seconds: float | None = None


@dataclass(frozen=True)
class EmbeddingsManifest(_Manifest):
    """An embeddings folder: item (and context) vectors of one checkpoint and graph.

    ``checkpoint_sha256`` and ``graph_sources`` are what it was made from (with
    ``new_items`` for new items embedded after training); ``contexts`` is the
    number of context vectors, None when only items were embedded. Only ``count``
    and ``dim`` are required: vectors made elsewhere, in this folder layout, index
    like ours.
    """

    count: int
    dim: int
    checkpoint_sha256: str | None = None
    checkpoint: str | None = None
    step: int | None = None
    graph: str | None = None
    engine: str | None = None
    seed: int | None = None
    created: str | None = None
    contexts: int | None = None
    graph_sources: dict | None = None
    engine_reason: str | None = None
    new_items: dict | None = None  # new items' files and their sha256
    with_interactions: int | None = None  # new items' interactions used
    seconds: dict = field(default_factory=dict)  # per phase
    format_version: int = EMBEDDINGS_VERSION


@dataclass(frozen=True)
class IndexManifest(_Manifest):
    """An index folder: the FAISS index of one embeddings folder, and how it did.

    Only what `Index.load` needs is required, so indexes an older version built
    keep loading.
    """

    KEYS: ClassVar[dict[str, str]] = {"recall@10": "recall_at_10"}
    FORMER: ClassVar[dict[str, str]] = {"embeddings_checksum": "checkpoint_sha256"}

    kind: str
    factory: str
    dim: int
    count: int
    search_params: dict | None = None  # tuned at build time; None: exact search
    requested: str | None = None  # the kind asked for (auto, ...)
    build_params: dict = field(default_factory=dict)
    recall_at_10: float | None = None  # against exact search, on sampled queries
    recall_queries: int | None = None
    build_seconds: float | None = None
    device: str | None = None
    embeddings: str | None = None  # the folder it indexed
    seed: int | None = None
    metric: str = "inner_product"
    normalized: bool = True
    checkpoint_sha256: str | None = None  # of the checkpoint the embeddings came from
    contexts: int | None = None  # context vectors kept for `Index.recommend`
    graph: str | None = None  # where the contexts' training items came from
    added: list = field(default_factory=list)  # `pinsage index add`, in order


@dataclass(frozen=True)
class StageRecord(_Manifest):
    """One stage of a pipeline run, as the root manifest records it."""

    seconds: float  # of the run that did the work, when this one skipped it
    skipped: bool
    finished: str
    workers: int | None = None  # train: data-parallel workers
    reason: str | None = None  # why it could not run (eval without a test file)


@dataclass(frozen=True)
class RootManifest(_Manifest):
    """A pipeline run root (``ROOT/manifest.json``): what ran, from which config."""

    config_sha256: str
    code_version: str
    dataset: str
    format_version: int
    stages: dict[str, StageRecord] = field(default_factory=dict)
    checkpoint_sha256: str | None = None  # of the checkpoint embedded

    def to_json(self) -> dict:
        """The manifest as plain JSON data, its stages included."""
        plain = super().to_json()
        plain["stages"] = {k: v.to_json() for k, v in self.stages.items()}
        return plain

    @classmethod
    def from_json(cls, raw: dict, where: Path | str) -> Self:
        """The manifest in ``raw``, its stages typed; `DataError` if malformed."""
        manifest = super().from_json(raw, where)
        stages = {}
        for name, stage in manifest.stages.items():
            if not isinstance(stage, dict):
                raise DataError(
                    f"{where}: stage '{name}' is {stage!r}, not an object; rerun "
                    "the pipeline with --overwrite."
                )
            stages[name] = StageRecord.from_json(stage, f"{where} (stage {name})")
        return dataclasses.replace(manifest, stages=stages)
