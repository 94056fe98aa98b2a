import json
import re

import pyarrow.parquet as pq
import pytest

from pinsage.config import PipelineConfig, SamplerConfig
from pinsage.data.synth import SynthConfig
from pinsage.graph import load_graph
from pinsage.sampler.describe import describe_neighborhoods
from tests.helpers import run_cli


@pytest.fixture
def graph_dir(tmp_path, monkeypatch, capsys):
    assert (
        run_cli(
            [
                "-q",
                "data",
                "synth",
                "--out",
                str(tmp_path / "d"),
                "--items",
                "300",
                "--users",
                "150",
                "--edges",
                "4000",
                "--string-ids",
            ],
            monkeypatch,
            capsys,
        )[0]
        == 0
    )
    assert (
        run_cli(
            [
                "-q",
                "graph",
                "build",
                "--interactions",
                str(tmp_path / "d/interactions.parquet"),
                "--items",
                str(tmp_path / "d/items.parquet"),
                "--out",
                str(tmp_path / "g"),
            ],
            monkeypatch,
            capsys,
        )[0]
        == 0
    )
    return tmp_path / "g"


def test_sample_json_document(graph_dir, monkeypatch, capsys):
    g = load_graph(graph_dir)
    items = g.item_ids.take([0, 5]).to_pylist()
    user = g.context_ids[3].as_py()
    args = [
        "-q",
        "sample",
        "--graph",
        str(graph_dir),
        "--item",
        items[0],
        "--item",
        items[1],
        "--user",
        user,
        "--walks",
        "300",
        "--top",
        "4",
        "--seed",
        "9",
        "--json",
    ]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0
    doc = json.loads(out)  # stdout holds the JSON document and nothing else
    assert [s.get("item", s.get("user")) for s in doc["seeds"]] == [*items, user]
    for entry in doc["seeds"]:
        visits = [n["visits"] for n in entry["neighbors"]]
        assert visits == sorted(visits, reverse=True) and len(visits) <= 4
        assert sum(n["weight"] for n in entry["neighbors"]) == pytest.approx(1.0)
        assert all(isinstance(n["item"], str) for n in entry["neighbors"])
    # The library call with the same settings gives the same document.
    cfg = SamplerConfig(num_walks=300, top_k=4, seed=9)
    assert describe_neighborhoods(g, items, [user], cfg) == doc
    assert run_cli(args, monkeypatch, capsys)[1] == out  # deterministic


def test_synth_deterministic_and_planted_structure(tmp_path, monkeypatch, capsys):
    for name in ("a", "b"):
        run_cli(
            [
                "-q",
                "data",
                "synth",
                "--out",
                str(tmp_path / name),
                "--items",
                "500",
                "--users",
                "300",
                "--edges",
                "8000",
                "--clusters",
                "5",
                "--interests",  # one cluster a user: its share is checked below
                "1",
                "--subclusters",
                "1",
                "--seed",
                "3",
            ],
            monkeypatch,
            capsys,
        )
    for table in ("interactions", "test", "items"):
        assert pq.read_table(tmp_path / f"a/{table}.parquet").equals(
            pq.read_table(tmp_path / f"b/{table}.parquet")
        )
    train = pq.read_table(tmp_path / "a/interactions.parquet")
    test = pq.read_table(tmp_path / "a/test.parquet")
    assert train.num_rows + test.num_rows == 8000
    item_cluster = dict(
        zip(
            *pq.read_table(tmp_path / "a/item_clusters.parquet").to_pydict().values(),
            strict=True,
        )
    )
    user_cluster = dict(
        zip(
            *pq.read_table(tmp_path / "a/user_clusters.parquet").to_pydict().values(),
            strict=True,
        )
    )
    users, items = train["user"].to_pylist(), train["item"].to_pylist()
    inside = sum(
        item_cluster[i] == user_cluster[u] for u, i in zip(users, items, strict=True)
    ) / len(users)
    # Dense (27 pairs a user from 100 items a cluster): repeats drop some in-cluster
    # draws.
    assert 0.6 < inside < 0.88
    # Held-out share per user is floor(0.2 * n); no pair is both train and test.
    assert not set(zip(users, items, strict=True)) & set(
        zip(test["user"].to_pylist(), test["item"].to_pylist(), strict=True)
    )
    assert test.num_rows / 8000 == pytest.approx(0.2, abs=0.04)
    # Zipf-like popularity: the top 10% of items take far more than 10% of interactions.
    from collections import Counter

    counts = sorted(Counter(items).values(), reverse=True)
    assert sum(counts[:50]) / len(items) > 0.25


def test_synth_in_cluster_share_when_sparse():
    from pinsage.data.synth import synthesize_tables

    t = synthesize_tables(
        SynthConfig(
            num_items=20000,
            num_users=400,
            num_edges=6000,
            num_clusters=5,
            zipf=0.5,
            interests=1,
            subclusters=1,
        )
    )
    item_cluster = dict(zip(*t["item_clusters"].to_pydict().values(), strict=True))
    user_cluster = dict(zip(*t["user_clusters"].to_pydict().values(), strict=True))
    pairs = zip(
        t["interactions"]["user"].to_pylist(),
        t["interactions"]["item"].to_pylist(),
        strict=True,
    )
    inside = [item_cluster[i] == user_cluster[u] for u, i in pairs]
    # in_cluster=0.85 plus the 1/C chance that a random cluster is the user's own.
    assert sum(inside) / len(inside) == pytest.approx(0.85 + 0.15 / 5, abs=0.02)


def test_synth_overlapping_interests_and_subclusters():
    from pinsage.data.synth import synthesize_tables

    cfg = SynthConfig(
        num_items=20000,
        num_users=400,
        num_edges=6000,
        num_clusters=5,
        zipf=0.0,  # flat popularity: a sub-cluster holds 1/4 of its cluster's draws
        interests=2,
        subclusters=4,
        in_subcluster=0.6,
    )
    t = synthesize_tables(cfg)
    items = t["item_clusters"].to_pydict()
    groups = zip(items["cluster"], items["subcluster"], strict=True)
    item_group = dict(zip(items["item"], groups, strict=True))
    users = t["user_clusters"].to_pylist()
    tastes = {
        u["user"]: dict(zip(u["interests"], u["preferred_subclusters"], strict=True))
        for u in users
    }
    assert all(len(set(mine)) == 2 for mine in tastes.values())  # distinct clusters
    assert all(u["interests"][0] == u["cluster"] for u in users)  # own one first
    inside = focused = 0
    pairs = zip(
        t["interactions"]["user"].to_pylist(),
        t["interactions"]["item"].to_pylist(),
        strict=True,
    )
    for user, item in pairs:
        cluster, sub = item_group[item]
        if cluster in tastes[user]:
            inside += 1
            focused += sub == tastes[user][cluster]
    total = t["interactions"].num_rows
    # In one of the user's 2 clusters: 0.85, plus a random cluster landing there.
    assert inside / total == pytest.approx(0.85 + 0.15 * 2 / 5, abs=0.02)
    # Of the 0.85 aimed at a user's cluster, 0.6 go to the preferred sub-cluster
    # and the rest hit it 1 in 4; so do the 0.06 random draws that land there.
    want = (0.85 * (0.6 + 0.4 / 4) + 0.06 / 4) / 0.91
    assert focused / inside == pytest.approx(want, abs=0.03)


def test_synth_rejects_impossible_density():
    from pinsage.errors import ConfigError

    with pytest.raises(ConfigError, match="half of all"):
        SynthConfig(num_items=10, num_users=10, num_edges=80, subclusters=1)


def test_demo_runs_end_to_end_and_is_idempotent(tmp_path, monkeypatch, capsys):
    # The embedded demo config trains for ~a minute; the test runs the same path small.
    config = tmp_path / "demo.yaml"
    config.write_text(
        "sampler: {num_walks: 50}\n"
        "model: {dim: 32, hidden_dim: 32, out_dim: 32, text_buckets: 4096}\n"
        "train: {epochs: 2, steps_per_epoch: 15, batch_size: 128}\n"
        "execution: {producers: 0}\n"
    )
    args = ["-q", "demo", "--out", str(tmp_path / "demo"), "--config", str(config)]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert (
        code == 0
        and "neighbours by visits" in out
        and "nearest items by the trained" in out
    )
    lines = out.strip().splitlines()
    shared = {
        line.split(":")[0]: re.findall(
            r"(\d+)/(\d+) share the ([\w-]+) \(chance (\d+)%\)", line
        )
        for line in lines
        if " of their seed: " in line
    }
    for what in ("sampled neighbours of their seed", "nearest items of their seed"):
        found = {kind: (int(a), int(b), int(c)) for a, b, kind, c in shared[what]}
        # Planted clusters and sub-clusters show in the neighbourhoods (which also
        # reach users' second interests) and the trained embeddings, each well
        # above a random item's odds.
        for kind in ("cluster", "sub-cluster"):
            same, total, chance = found[kind]
            assert same / total > 2 * chance / 100, (what, kind)
        if what.startswith("nearest"):
            assert found["cluster"][0] / found["cluster"][1] > 0.5
    assert shared["nearest items of their seed"][0][1] == "15"
    result = json.loads((tmp_path / "demo/run/eval.json").read_text())
    rows = {ln.split()[0]: ln.split()[-2:] for ln in lines if ln.startswith("    ")}
    assert rows["PinSage"] == [f"{result['recall@20']:.4f}", f"{result['ndcg@20']:.4f}"]
    for name in ("popularity", "itemknn", "gfcf"):
        assert rows[name] == [
            f"{result['baselines'][name]['recall@20']:.4f}",
            f"{result['baselines'][name]['ndcg@20']:.4f}",
        ]
    mtime = (tmp_path / "demo/graph/manifest.json").stat().st_mtime_ns
    index_mtime = (tmp_path / "demo/index/manifest.json").stat().st_mtime_ns
    ckpt = sorted((tmp_path / "demo/run/checkpoints").glob("*.pt"))
    code, out2, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and out2 == out
    assert (tmp_path / "demo/graph/manifest.json").stat().st_mtime_ns == mtime
    assert (tmp_path / "demo/index/manifest.json").stat().st_mtime_ns == index_mtime
    assert sorted((tmp_path / "demo/run/checkpoints").glob("*.pt")) == ckpt


def test_demo_yaml_spells_out_the_embedded_default():
    from pathlib import Path

    from pinsage.config import load_config

    assert (
        load_config(Path(__file__).parents[1] / "configs/demo.yaml") == PipelineConfig()
    )


def test_train_bad_config_exits_2_and_eval_json(
    graph_dir, tmp_path, monkeypatch, capsys
):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 2\n")
    args = [
        "-q",
        "train",
        "--config",
        str(bad),
        "--graph",
        str(graph_dir),
        "--out",
        str(tmp_path / "r"),
    ]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "unknown key 'epoch'" in err and "did you mean 'epochs'" in err
    assert not (tmp_path / "r").exists()
    good = tmp_path / "good.yaml"
    good.write_text(
        "sampler: {num_walks: 10}\n"
        "model: {dim: 8, hidden_dim: 8, out_dim: 8, text_buckets: 256}\n"
        "train: {epochs: 1, steps_per_epoch: 2, batch_size: 16,"
        " num_random_negatives: 20}\n"
    )
    args[3] = str(good)
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    test_file = graph_dir.parent / "d/test.parquet"
    code, out, _ = run_cli(
        [
            "-q",
            "eval",
            "--run",
            str(tmp_path / "r"),
            "--graph",
            str(graph_dir),
            "--test",
            str(test_file),
            "--k",
            "10",
            "--k",
            "20",
            "--json",
        ],
        monkeypatch,
        capsys,
    )
    doc = json.loads(out)  # one JSON document, nothing else on stdout
    assert (
        code == 0
        and {"users", "recall@10", "recall@20", "ndcg@20", "hit_rate@10", "mrr"}
        <= doc.keys()
    )
    assert json.loads((tmp_path / "r/eval.json").read_text()) == doc
    code, out, _ = run_cli(
        ["-q", "eval", "--run", str(tmp_path / "r"), "--graph", str(graph_dir)]
        + ["--test", str(test_file), "--baselines", "gfcf,popularity"],
        monkeypatch,
        capsys,
    )
    lines = out.splitlines()
    assert code == 0 and lines[-2].split()[0] == "gfcf"
    shown = dict(line.split() for line in lines[:-2])  # the model's, 4 decimals
    assert shown["recall@20"] == f"{doc['recall@20']:.4f}"
    assert shown["users"] == str(doc["users"])
    assert lines[-1].split()[:2] == ["popularity", "recall@20"]
    baselines = json.loads((tmp_path / "r/eval.json").read_text())["baselines"]
    assert list(baselines) == ["gfcf", "popularity"]
    bad = ["eval", "--run", str(tmp_path / "r"), "--graph", str(graph_dir)]
    bad += ["--test", str(test_file), "--baselines", "svd"]
    code, _, err = run_cli(bad, monkeypatch, capsys)
    assert code == 2 and "unknown ['svd']" in err
