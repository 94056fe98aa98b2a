"""Bad input: exit code 2, a message naming file and column, no output left behind."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import run_cli


def _write(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


def _interactions_cases(tmp):
    ok_items = {"item": [1, 2]}
    cases = {
        "missing file": (tmp / "nope.parquet", None, ["does not exist"]),
        "not parquet": (tmp / "text.parquet", None, ["not a readable Parquet"]),
        "truncated": (tmp / "trunc.parquet", None, ["not a readable Parquet"]),
        "misnamed column": (
            _write(tmp / "c.parquet", usr=[1], item=[1]),
            None,
            ["missing user column 'user'", "did you mean 'usr'"],
        ),
        "float ids": (
            _write(tmp / "f.parquet", user=[1.5], item=[1]),
            None,
            ["'user'", "float"],
        ),
        "list ids": (
            _write(tmp / "l.parquet", user=[1], item=[[1, 2]]),
            None,
            ["'item'", "list"],
        ),
        "string weights": (
            _write(tmp / "w.parquet", user=[1], item=[1], weight=["2"]),
            None,
            ["'weight'", "numeric"],
        ),
        "null ids": (
            _write(tmp / "n.parquet", user=[1, None], item=[1, 2]),
            None,
            ["'user'", "null", "row 1"],
        ),
        "null ids in both columns": (  # both named at once, not one per run
            _write(tmp / "n2.parquet", user=[1, None, 3], item=[None, 2, None]),
            None,
            [
                "'user' has 1 null ids (first at row 1)",
                "'item' has 2 null ids (first at row 0)",
            ],
        ),
        "zero weight": (
            _write(tmp / "z.parquet", user=[1, 2], item=[1, 2], weight=[1.0, 0.0]),
            None,
            ["'weight'", "row 1", "> 0"],
        ),
        "nan weight": (
            _write(
                tmp / "nan.parquet",
                user=[1, 2],
                item=[1, 2],
                weight=[float("nan"), 1.0],
            ),
            None,
            ["'weight'", "row 0"],
        ),
        "empty": (
            _write(
                tmp / "e.parquet",
                user=pa.array([], pa.int64()),
                item=pa.array([], pa.int64()),
            ),
            None,
            ["empty"],
        ),
        "duplicate items": (
            _write(tmp / "ok.parquet", user=[1, 2], item=[1, 2]),
            _write(tmp / "dup.parquet", item=[1, 2, 2], price=[1.0, 2.0, 3.0]),
            ["dup.parquet", "'item'", "repeats 1 item ids", "[2]"],
        ),
        "item id type mismatch": (
            _write(tmp / "ok2.parquet", user=[1, 2], item=[1, 2]),
            _write(tmp / "strs.parquet", item=["1", "2"]),
            ["strs.parquet", "string ids", "int ids"],
        ),
        "items empty": (
            _write(tmp / "ok3.parquet", user=[1], item=[1]),
            _write(tmp / "ie.parquet", item=pa.array([], pa.int64())),
            ["ie.parquet", "empty"],
        ),
        "no catalogue overlap": (
            _write(tmp / "ok4.parquet", user=[1], item=[9]),
            _write(tmp / "cat.parquet", **ok_items),
            ["none of its items"],
        ),
    }
    (tmp / "text.parquet").write_text("user,item\n1,2\n")
    good = _write(tmp / "good.parquet", user=list(range(1000)), item=list(range(1000)))
    (tmp / "trunc.parquet").write_bytes(good.read_bytes()[:-100])
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "not parquet",
        "truncated",
        "misnamed column",
        "float ids",
        "list ids",
        "string weights",
        "null ids",
        "null ids in both columns",
        "zero weight",
        "nan weight",
        "empty",
        "duplicate items",
        "item id type mismatch",
        "items empty",
        "no catalogue overlap",
    ],
)
def test_graph_build_bad_input(tmp_path, case, monkeypatch, capsys):
    interactions, items, expected = _interactions_cases(tmp_path)[case]
    out = tmp_path / "graph"
    args = ["graph", "build", "--interactions", str(interactions), "--out", str(out)]
    if items is not None:
        args += ["--items", str(items)]
    code, _, err = run_cli(["-q", *args], monkeypatch, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    message = err.strip()
    assert message.startswith("error: ") and message.count("\n") == 0
    assert str(interactions.name) in message or (
        items is not None and items.name in message
    )
    for fragment in expected:
        assert fragment in message
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".graph")]


def test_unknown_item_in_sample_exits_2(tmp_path, monkeypatch, capsys):
    _write(tmp_path / "i.parquet", user=[1, 1], item=[10, 20])
    build = [
        "graph",
        "build",
        "--interactions",
        str(tmp_path / "i.parquet"),
        "--out",
        str(tmp_path / "g"),
    ]
    assert run_cli(build, monkeypatch, capsys)[0] == 0
    code, _, err = run_cli(
        ["sample", "--graph", str(tmp_path / "g"), "--item", "99"], monkeypatch, capsys
    )
    assert code == 2 and "unknown item id(s) [99]" in err
    code, _, err = run_cli(
        ["sample", "--graph", str(tmp_path / "g"), "--item", "abc"], monkeypatch, capsys
    )
    assert code == 2 and "abc" in err
    code, _, err = run_cli(
        ["sample", "--graph", str(tmp_path / "nope"), "--item", "1"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "not a complete graph directory" in err


def test_usage_errors_exit_2(monkeypatch, capsys):
    assert run_cli(["sample", "--graph", "x"], monkeypatch, capsys)[0] == 2
    code, _, err = run_cli(
        ["graph", "build", "--interactions", "a", "--out", "b", "--feature", "x=bogus"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "KIND one of" in err
    assert (
        run_cli(
            ["sample", "--graph", "x", "--item", "1", "--walks", "0"],
            monkeypatch,
            capsys,
        )[0]
        == 2
    )


def test_embed_without_a_checkpoint_exits_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    _write(tmp_path / "i.parquet", user=[1, 1, 2], item=[10, 20, 20])
    build = ["graph", "build", "--interactions", str(tmp_path / "i.parquet")]
    assert run_cli([*build, "--out", str(tmp_path / "g")], monkeypatch, capsys)[0] == 0
    (tmp_path / "run").mkdir()
    args = ["embed", "--run", str(tmp_path / "run"), "--graph", str(tmp_path / "g")]
    code, out, err = run_cli(
        [*args, "--out", str(tmp_path / "emb"), "--engine", "local"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "no checkpoint" in err and str(tmp_path / "run") in err
    assert not out and not (tmp_path / "emb").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".emb")]
    code, _, err = run_cli(
        [*args, "--out", str(tmp_path / "emb"), "--engine", "spark"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "spark" in err


def test_serve_on_a_busy_port_is_exit_2(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(
            ["serve", "--index", str(tmp_path), "--port", str(port)],
            monkeypatch,
            capsys,
        )
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
