"""`pinsage data`, `pinsage graph` and `pinsage sample`: inputs to a sampled graph."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from pinsage.config import FEATURE_KINDS, IMPORT_FORMATS, SamplerConfig, SynthConfig

__all__ = ["data", "graph", "sample"]

log = logging.getLogger(__name__)

_DEFAULT_SAMPLER = SamplerConfig()


@click.group()
def data() -> None:
    """Create data folders: synthetic, or imported from public formats."""


@data.command("synth")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Data folder to write.",
)
@click.option(
    "--items",
    "num_items",
    type=click.IntRange(1),
    default=SynthConfig.num_items,
    show_default=True,
)
@click.option(
    "--users",
    "num_users",
    type=click.IntRange(1),
    default=SynthConfig.num_users,
    show_default=True,
)
@click.option(
    "--edges",
    "num_edges",
    type=click.IntRange(1),
    default=SynthConfig.num_edges,
    show_default=True,
)
@click.option(
    "--clusters",
    "num_clusters",
    type=click.IntRange(1),
    default=SynthConfig.num_clusters,
    show_default=True,
)
@click.option(
    "--interests",
    type=click.IntRange(1),
    default=SynthConfig.interests,
    show_default=True,
    help="Clusters each user is drawn to (its own and others).",
)
@click.option(
    "--subclusters",
    type=click.IntRange(1),
    default=SynthConfig.subclusters,
    show_default=True,
    help="Sub-clusters of each cluster; a user prefers one in each of its clusters.",
)
@click.option(
    "--in-subcluster",
    type=click.FloatRange(0, 1),
    default=SynthConfig.in_subcluster,
    show_default=True,
    help="Share of in-cluster draws inside the user's preferred sub-cluster.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=SynthConfig.test_fraction,
    show_default=True,
)
@click.option(
    "--cold-items",
    type=click.FloatRange(0, 1, max_open=True),
    default=SynthConfig.cold_items,
    show_default=True,
    help="Share of items with no training interactions (features and test kept).",
)
@click.option("--string-ids", is_flag=True, help="Write string ids instead of int64.")
@click.option("--seed", type=int, default=SynthConfig.seed, show_default=True)
@click.option("--overwrite", is_flag=True, help="Rewrite a complete folder.")
def data_synth(out: Path, overwrite: bool, **params) -> None:
    """Generate interactions with planted clusters, item features and a test split."""
    from pinsage.data.synth import synthesize

    synthesize(SynthConfig(**params), out, overwrite=overwrite)


@data.command("import")
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True)
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Data folder to write.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Share of each user's interactions held out as the test split (the latest "
    "where there are timestamps): movielens (default 0.2), parquet sources without "
    "test.parquet (default: none).",
)
@click.option(
    "--min-rating",
    type=float,
    default=None,
    help="movielens: only ratings >= this are positives (usually 4); default all.",
)
@click.option(
    "--rating-weights/--no-rating-weights",
    default=True,
    show_default=True,
    help="movielens: the rating is the edge weight (else every positive weighs 1).",
)
@click.option(
    "--user-column", default="user", show_default=True, help="parquet: source column."
)
@click.option(
    "--item-column", default="item", show_default=True, help="parquet: source column."
)
@click.option(
    "--items-id-column",
    default=None,
    help="parquet: the id column of items.parquet, where it is not named as "
    "--item-column's.",
)
@click.option(
    "--weight-column",
    default="weight",
    show_default=True,
    help="parquet: source column.",
)
@click.option(
    "--timestamp-column",
    default="timestamp",
    show_default=True,
    help="parquet: source column.",
)
@click.option(
    "--cold-items",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Share of items made cold (features and test rows kept, training rows "
    "dropped): the latest to appear where there are timestamps; needs item "
    "features (movielens, parquet with items.parquet).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds tie-breaks in the split and the choice of cold items.",
)
@click.option("--overwrite", is_flag=True, help="Rewrite a complete folder.")
def data_import(
    fmt: str,
    src: Path,
    out: Path,
    test_fraction: float | None,
    min_rating: float | None,
    rating_weights: bool,
    user_column: str,
    item_column: str,
    items_id_column: str | None,
    weight_column: str,
    timestamp_column: str,
    cold_items: float,
    seed: int,
    overwrite: bool,
) -> None:
    """Import SRC (a folder) into the Parquet data contract."""
    from pinsage.data.contract import InteractionColumns
    from pinsage.data.importers import import_folder

    columns = InteractionColumns(
        user_column, item_column, weight_column, timestamp_column, items_id_column
    )
    import_folder(
        fmt,
        src,
        out,
        test_fraction=test_fraction,
        min_rating=min_rating,
        rating_weights=rating_weights,
        columns=columns,
        cold_items=cold_items,
        seed=seed,
        overwrite=overwrite,
    )


@click.group()
def graph() -> None:
    """Build the bipartite graph store."""


def _parse_feature_kinds(values: tuple[str, ...]) -> dict[str, str]:
    kinds = {}
    for value in values:
        name, _, kind = value.partition("=")
        if kind not in FEATURE_KINDS:
            raise click.BadParameter(
                f"'{value}': expected NAME=KIND with KIND one of "
                f"{', '.join(FEATURE_KINDS)}",
                param_hint="--feature",
            )
        kinds[name] = kind
    return kinds


@graph.command("build")
@click.option("--interactions", type=click.Path(path_type=Path), required=True)
@click.option(
    "--items",
    type=click.Path(path_type=Path),
    default=None,
    help="Item catalogue with features.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Graph directory to write.",
)
@click.option("--user-column", default="user", show_default=True)
@click.option("--item-column", default="item", show_default=True)
@click.option(
    "--items-id-column",
    default=None,
    help="The id column of --items, where it is not named as --item-column's.",
)
@click.option("--weight-column", default="weight", show_default=True)
@click.option(
    "--feature",
    "features",
    multiple=True,
    metavar="NAME=KIND",
    help=f"Set a feature column's kind ({', '.join(FEATURE_KINDS)}); else inferred.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Hold out this share of each user's interactions (the latest where there "
    "is a timestamp column, else a seeded draw) as OUT/test.parquet, for "
    "`pinsage eval`; the graph is built from the rest.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds the test split."
)
@click.option("--overwrite", is_flag=True, help="Rebuild a complete graph.")
def graph_build(
    interactions: Path,
    items: Path | None,
    out: Path,
    user_column: str,
    item_column: str,
    items_id_column: str | None,
    weight_column: str,
    features: tuple[str, ...],
    test_fraction: float | None,
    seed: int,
    overwrite: bool,
) -> None:
    """Build CSR arrays, id maps and features from Parquet interactions."""
    from pinsage.data.contract import InteractionColumns
    from pinsage.graph import build_graph

    columns = InteractionColumns(
        user=user_column,
        item=item_column,
        weight=weight_column,
        items_item=items_id_column,
    )
    build_graph(
        interactions,
        out,
        items=items,
        columns=columns,
        feature_kinds=_parse_feature_kinds(features),
        test_fraction=test_fraction,
        seed=seed,
        overwrite=overwrite,
    )


@click.command("sample")
@click.option("--graph", "graph_dir", type=click.Path(path_type=Path), required=True)
@click.option("--item", "items", multiple=True, help="Seed item id (repeatable).")
@click.option("--user", "users", multiple=True, help="Seed user id (repeatable).")
@click.option(
    "--walks",
    type=click.IntRange(1),
    default=_DEFAULT_SAMPLER.num_walks,
    show_default=True,
)
@click.option(
    "--length",
    type=click.IntRange(1),
    default=_DEFAULT_SAMPLER.walk_length,
    show_default=True,
    help="Most traversals per walk.",
)
@click.option(
    "--restart",
    type=click.FloatRange(0, 1),
    default=_DEFAULT_SAMPLER.restart,
    show_default=True,
    help="Probability that a walk ends after each traversal.",
)
@click.option(
    "--top", type=click.IntRange(1), default=_DEFAULT_SAMPLER.top_k, show_default=True
)
@click.option("--seed", type=int, default=_DEFAULT_SAMPLER.seed, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def sample(
    graph_dir: Path,
    items: tuple[str, ...],
    users: tuple[str, ...],
    walks: int,
    length: int,
    restart: float,
    top: int,
    seed: int,
    as_json: bool,
) -> None:
    """Print importance neighbourhoods (top items by random-walk visits)."""
    if not items and not users:
        raise click.UsageError("give at least one --item or --user")
    cfg = SamplerConfig(
        num_walks=walks, walk_length=length, restart=restart, top_k=top, seed=seed
    )
    from pinsage.graph import load_graph
    from pinsage.sampler.describe import describe_neighborhoods

    g = load_graph(graph_dir)
    t0 = time.perf_counter()
    doc = describe_neighborhoods(g, list(items), list(users), cfg)
    log.info(
        "sampled %d neighbourhoods in %.3fs",
        len(items) + len(users),
        time.perf_counter() - t0,
    )
    if as_json:
        click.echo(json.dumps(doc))
        return
    for entry in doc["seeds"]:
        key = "item" if "item" in entry else "user"
        click.echo(f"{key} {entry[key]}:")
        for n in entry["neighbors"]:
            click.echo(
                f"  item {n['item']!s:>12}  visits {n['visits']:>6}  "
                f"alpha {n['weight']:.3f}"
            )
