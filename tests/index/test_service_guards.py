"""The lookup service behind a load balancer: reload confined to the index root and
guarded by a token, folders checked whole before a swap, requests bounded, and no
answer that echoes unbounded input or shows a filesystem path."""

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import uvicorn

from pinsage.errors import DataError
from pinsage.index import Index, build_index
from pinsage.index.service import MAX_RESULTS, create_app
from tests.helpers import run_cli

TOKEN = "a-long-enough-test-token"


def _truncate(folder):
    file = folder / "vectors.npy"
    os.truncate(file, file.stat().st_size - 100)


def _short_ids(folder):
    table = pq.read_table(folder / "ids.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), folder / "ids.parquet")


def _edit_vectors(edit):
    def breaker(folder):
        vectors = np.load(folder / "vectors.npy")
        np.save(folder / "vectors.npy", edit(vectors))

    return breaker


def _nan(vectors):
    vectors[7, 3] = np.nan
    return vectors


def _write(name, data):
    return lambda folder: (folder / name).write_bytes(data)


BROKEN = {  # folder name: (what breaks it, a word the refusal must hold)
    "truncated-vectors": (_truncate, "vectors.npy"),
    "short-ids": (_short_ids, "ids.parquet 2999"),
    "garbage-faiss": (_write("index.faiss", b"garbage!" * 64), "index.faiss"),
    "wrong-dims": (_edit_vectors(lambda v: v[:, :16].copy()), "16-dim"),
    "extra-row": (_edit_vectors(lambda v: np.vstack([v, v[:1]])), "vectors.npy 3001"),
    "nan-vector": (_edit_vectors(_nan), "NaN"),
    "bad-manifest": (_write("manifest.json", b'{"kind": '), "manifest.json"),
    "list-manifest": (_write("manifest.json", b"[1, 2]"), "manifest.json"),
    "no-ids": (lambda folder: (folder / "ids.parquet").unlink(), "ids.parquet"),
}


@pytest.fixture(scope="module")
def root(embeddings, tmp_path_factory):
    """An index root: index ``a``, its copy ``b``, broken copies, ways out of it."""
    root = tmp_path_factory.mktemp("root")
    build_index(embeddings, root / "a", kind="flat")
    shutil.copytree(root / "a", root / "b")
    for name, (breaker, _) in BROKEN.items():
        shutil.copytree(root / "a", root / name)
        breaker(root / name)
    outside = tmp_path_factory.mktemp("outside") / "index"
    shutil.copytree(root / "a", outside)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    shutil.copytree(root / "a", root / "leaky")
    (root / "leaky/vectors.npy").unlink()
    (root / "leaky/vectors.npy").symlink_to(outside / "vectors.npy")
    return root


@pytest.fixture(scope="module")
def server(root, serve):
    with serve(root / "a") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


def _shows_no_path(response, root):
    for path in (root, root.parent, root.resolve()):
        assert str(path) not in response.text
    return response


def _serves_a(client, root):
    """The server still answers from index ``a``, as before the refused reload."""
    health = _shows_no_path(client.get("/healthz"), root)
    assert health.status_code == 200 and health.json()["index"] == "a"
    got = client.get("/similar/item-4", params={"k": 3})
    assert got.json() == Index.load(root / "a").similar(["item-4"], 3)[0]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_load_refuses_an_inconsistent_folder(root, name):
    with pytest.raises(DataError, match=f"index folder '.*{name}'.*{BROKEN[name][1]}"):
        Index.load(root / name)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_reload_to_an_inconsistent_folder_is_400_and_the_old_index_serves(
    client, root, name
):
    r = _shows_no_path(client.post("/reload", json={"path": name}), root)
    assert r.status_code == 400, r.text
    assert f"index folder '{name}'" in r.json()["detail"]
    assert BROKEN[name][1] in r.json()["detail"]
    _serves_a(client, root)


def test_reload_outside_the_root_is_403_and_the_old_index_serves(client, root):
    outside = (root / "escape").resolve()
    assert (outside / "index.faiss").exists()  # a valid index, just not under root
    for path in (
        str(outside),
        os.path.relpath(outside, root),  # ../outside0/index
        f"a/../{os.path.relpath(outside, root)}",
        "escape",  # a symlink to it
        "leaky",  # a folder under root with one file linked out of it
    ):
        r = _shows_no_path(client.post("/reload", json={"path": path}), root)
        assert r.status_code == 403, (path, r.text)
        assert "outside the index root" in r.json()["detail"]
    _serves_a(client, root)


def test_reload_takes_paths_from_the_root_and_names_no_path(client, root):
    for path in ("b", str(root / "a")):
        r = _shows_no_path(client.post("/reload", json={"path": path}), root)
        assert r.status_code == 200 and r.json()["count"] == 3000
    _serves_a(client, root)
    missing = _shows_no_path(client.get("/similar/nope"), root)
    assert missing.status_code == 404 and "'nope' is not in the index a" in missing.text


def test_admin_endpoints_need_the_token(root, serve):
    with (
        serve(root / "a", admin_token=TOKEN) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
        ):
            r = client.post("/reload", json={"path": "b"}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert client.get("/healthz").json()["index"] == "a"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/reload", json={"path": "b"}, headers=auth).json() == {
            "status": "reloaded",
            "count": 3000,
            "index": "b",
        }
        assert client.get("/similar/item-1").status_code == 200  # lookups stay open


def test_without_a_token_only_loopback_clients_may_reload(root):
    app = create_app(root / "a")

    async def reload_from(host: str) -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app, client=(host, 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            r = await c.post("/reload", json={"path": "b"})
            return r.status_code, (await c.get("/healthz")).json()["index"]

    assert asyncio.run(reload_from("10.1.2.3")) == (403, "a")
    assert asyncio.run(reload_from("127.0.0.1")) == (200, "b")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.com", "10.1.2.3"])
def test_serve_refuses_a_public_address_without_a_token(
    root, host, monkeypatch, capsys
):
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw["host"]))
    monkeypatch.delenv("PINSAGE_ADMIN_TOKEN", raising=False)
    args = ["serve", "--index", str(root / "a"), "--host", host]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "--admin-token" in err and "PINSAGE_ADMIN_TOKEN" in err
    assert not served
    monkeypatch.setenv("PINSAGE_ADMIN_TOKEN", TOKEN)
    assert run_cli(args, monkeypatch, capsys)[0] == 0 and served == [host]


def test_serve_refuses_an_index_outside_its_root_and_an_empty_token(root):
    from pinsage.errors import ConfigError

    with pytest.raises(ConfigError, match="not under --index-root"):
        create_app(root / "a", index_root=root / "b")
    with pytest.raises(ConfigError, match="token is empty"):
        create_app(root / "a", admin_token=" ")


def test_bodies_over_the_cap_are_413_before_they_are_read(root, serve, client):
    big = b'{"items": ["item-1"], "k": 3, "pad": "' + b"x" * (2 << 20) + b'"}'
    headers = {"content-type": "application/json"}
    r = client.post("/similar", content=big, headers=headers)  # default: 1 MiB
    assert r.status_code == 413 and "1,048,576" in r.json()["detail"]
    with serve(root / "a", max_body_bytes=10_000) as url:
        with httpx.Client(base_url=url, timeout=60) as small:
            r = small.post("/similar", content=big[:20_000], headers=headers)
            assert r.status_code == 413

        def chunks():  # no Content-Length: counted as it streams
            yield b'{"items": ["item-1"], "k": 3, "pad": "'
            for _ in range(10):
                yield b"x" * 4096
            yield b'"}'

        with httpx.Client(base_url=url, timeout=60) as small:
            r = small.post("/similar", content=chunks(), headers=headers)
            assert r.status_code == 413
            ok = small.post("/similar", json={"items": ["item-1"], "k": 3})
            assert ok.status_code == 200


def test_long_ids_are_refused_without_being_echoed(client, root):
    long_id = "z" * 5000
    for r in (
        client.get(f"/similar/{long_id}"),
        client.get(f"/recommend/{long_id}"),
        client.post("/similar", json={"items": ["item-1", long_id], "k": 3}),
        client.post("/similar", json={"items": [{"x": long_id}], "k": 3}),
        client.post("/similar", json={"items": [10**400], "k": 3}),
        client.post("/reload", json={"path": long_id}),
    ):
        assert r.status_code == 422, r.text
        assert "z" * 20 not in r.text and "0" * 20 not in r.text and len(r.text) < 2000
    many_bad = client.post("/similar", json={"items": [[1]] * 1000, "k": 3})
    assert many_bad.status_code == 422 and len(many_bad.json()["detail"]) <= 10


def test_batches_are_capped_at_items_times_k(client):
    items = [f"item-{i}" for i in range(1000)]
    k = MAX_RESULTS // len(items) + 1
    r = client.post("/similar", json={"items": items, "k": k})
    assert r.status_code == 422 and "items x k" in r.text


def test_a_loaded_index_survives_its_folder_being_truncated(root, tmp_path):
    """Nothing is memory-mapped: a truncated file would kill the process (SIGBUS)."""
    folder = tmp_path / "index"
    shutil.copytree(root / "a", folder)
    script = textwrap.dedent(f"""
        import os
        from pinsage.index import Index
        index = Index.load({str(folder)!r})
        for name in os.listdir({str(folder)!r}):
            os.truncate(os.path.join({str(folder)!r}, name), 0)
        assert len(index.similar(["item-2999", "item-1"], 5)) == 2
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
