"""Typed manifests: JSON in and out, old files, and malformed ones named."""

import json

import pytest

from pinsage.atomic import publish
from pinsage.errors import DataError
from pinsage.manifests import (
    EmbeddingsManifest,
    IndexManifest,
    RootManifest,
    StageRecord,
)

EMBEDDINGS = dict(
    count=3,
    dim=8,
    checkpoint_sha256="ab" * 32,
    checkpoint="run/checkpoints/step-00000004.pt",
    step=4,
    graph="graph",
    engine="local",
    seed=0,
    created="2026-12-03T00:00:00+00:00",
)


def test_a_published_manifest_reads_back_equal(tmp_path):
    manifest = EmbeddingsManifest(**EMBEDDINGS, contexts=2, seconds={"load": 0.1})
    publish(tmp_path, manifest.to_json())
    assert EmbeddingsManifest.read(tmp_path) == manifest
    assert json.loads((tmp_path / "manifest.json").read_text())["contexts"] == 2
    assert EmbeddingsManifest.read(tmp_path / "absent") is None


def test_current_only_when_every_key_matches(tmp_path):
    publish(tmp_path, EmbeddingsManifest(**EMBEDDINGS).to_json())
    same = {"checkpoint_sha256": "ab" * 32, "graph_sources": None}
    assert EmbeddingsManifest.read_current(tmp_path, same) is not None
    other = same | {"checkpoint_sha256": "cd" * 32}
    assert EmbeddingsManifest.read_current(tmp_path, other) is None


def test_index_keys_that_are_not_identifiers_and_former_names():
    raw = {"kind": "flat", "factory": "Flat", "dim": 8, "count": 3}
    raw |= {"recall@10": 1.0, "embeddings_checksum": "ef" * 32, "newer_key": 1}
    manifest = IndexManifest.from_json(raw, "index/manifest.json")
    assert manifest.recall_at_10 == 1.0
    assert manifest.checkpoint_sha256 == "ef" * 32  # read under its former name
    out = manifest.to_json()
    assert out["recall@10"] == 1.0 and "recall_at_10" not in out
    assert out["checkpoint_sha256"] == "ef" * 32 and "embeddings_checksum" not in out
    assert "newer_key" not in out  # a newer version's key is ignored
    both = raw | {"checkpoint_sha256": "01" * 32}
    assert IndexManifest.from_json(both, "m").checkpoint_sha256 == "01" * 32


@pytest.mark.parametrize(
    "change, message",
    [
        ({"count": None}, "index/manifest.json: 'count' is None, expected int;"),
        ({"count": "3"}, "'count' is '3'"),
        ({"count": True}, "'count' is True"),
        ({"search_params": [1]}, "'search_params' is \\[1\\], expected dict \\| None"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(change, message):
    raw = {"kind": "flat", "factory": "Flat", "dim": 8, "count": 3} | change
    with pytest.raises(DataError, match=message):
        IndexManifest.from_json(raw, "index/manifest.json")


def test_a_missing_key_is_named():
    with pytest.raises(DataError, match="index/m: no 'factory'"):
        IndexManifest.from_json({"kind": "flat", "dim": 8, "count": 3}, "index/m")


def test_root_manifest_types_its_stages():
    root = RootManifest(
        config_sha256="0" * 64,
        code_version="0.6.0",
        dataset="synthetic",
        format_version=1,
        stages={"train": StageRecord(seconds=1.5, skipped=False, finished="t")},
    )
    plain = root.to_json()
    assert plain["stages"]["train"]["seconds"] == 1.5
    assert RootManifest.from_json(plain, "manifest.json") == root
    plain["stages"]["train"] = "done"
    with pytest.raises(DataError, match="stage 'train' is 'done'"):
        RootManifest.from_json(plain, "manifest.json")
