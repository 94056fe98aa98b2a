"""`pinsage train` and `pinsage eval`: the training job and its evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pinsage.cli.execution import execution_options, with_execution
from pinsage.config import BASELINES, load_config

__all__ = ["eval_cmd", "train_cmd"]


@click.command("train")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option("--graph", "graph_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Run directory."
)
@click.option(
    "--resume", is_flag=True, help="Continue from the run's latest checkpoint."
)
@click.option(
    "--validation",
    "validation_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Validation interactions (held out of the graph's training data, never the "
    "test file) to evaluate at each epoch's end.",
)
@execution_options
@click.option(
    "--until-step",
    type=click.IntRange(1),
    default=None,
    help="Stop after this step with a checkpoint; continue later with --resume.",
)
def train_cmd(
    config_path: Path,
    graph_dir: Path,
    out: Path,
    resume: bool,
    validation_file: Path | None,
    until_step: int | None,
    **execution: str | int | None,
) -> None:
    """Train PinSage on a graph.

    Checkpoints, metrics.jsonl and config.yaml go to OUT. With --workers N > 1,
    N data-parallel workers each train on their own batches (train.batch_size per
    worker) and rank 0 writes OUT.
    """
    from pinsage.train import train

    cfg = with_execution(load_config(config_path), execution)
    evaluate = None
    if validation_file:
        from pinsage.eval.job import evaluator
        from pinsage.graph import load_graph

        evaluate = evaluator(load_graph(graph_dir), validation_file, cfg)
    train(
        cfg,
        graph_dir,
        out,
        resume=resume,
        evaluate=evaluate,
        until_step=until_step,
    )


@click.command("eval")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True)
@click.option("--graph", "graph_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--test",
    "test_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Held-out interactions; default GRAPH/test.parquet (`graph build "
    "--test-fraction`).",
)
@click.option(
    "--k",
    "ks",
    type=click.IntRange(1, 1000),
    multiple=True,
    default=(20,),
    show_default=True,
    help="Cut-offs (repeatable).",
)
@click.option(
    "--baselines",
    default="",
    metavar="NAMES",
    help="Also rank with training-free baselines, comma-separated: "
    f"{','.join(BASELINES)}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def eval_cmd(
    run_dir: Path,
    graph_dir: Path,
    test_file: Path | None,
    ks: tuple[int, ...],
    baselines: str,
    as_json: bool,
) -> None:
    """Evaluate a run: recall/NDCG@K for users, hit-rate@K/MRR for items."""
    from pinsage.eval.job import evaluate_run

    names = [name.strip() for name in baselines.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise click.BadParameter(
            f"unknown {unknown}; choose from {','.join(BASELINES)}",
            param_hint="--baselines",
        )
    if test_file is None:
        test_file = graph_dir / "test.parquet"
        if not test_file.exists():
            raise click.UsageError(
                f"{graph_dir} holds no test split: pass --test FILE, or build the "
                "graph with --test-fraction."
            )
    metrics = evaluate_run(run_dir, graph_dir, test_file, sorted(set(ks)), names)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    compared = metrics.pop("baselines", {})
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        click.echo(f"{key:>16}  {shown}")
    for name, scores in compared.items():
        shown = "  ".join(
            f"{key} {value:.4f}" for key, value in scores.items() if "@" in key
        )
        click.echo(f"{name:>16}  {shown}  ({scores['seconds']} s)")
