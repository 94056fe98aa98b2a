import base64
import io
import json
import re
import shutil

import pytest
from PIL import Image

from pinsage.errors import DataError
from pinsage.index import Index
from pinsage.report import collect_run, write_report
from pinsage.report.collect import read_metrics
from pinsage.report.neighbors import NEIGHBOURS_SHOWN
from pinsage.report.published import GOWALLA
from tests.helpers import run_cli
from tests.report.known import FINAL, TIMINGS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read(path) -> str:
    return path.read_text(encoding="utf-8")


def _assert_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html


def _images(html: str) -> list[Image.Image]:
    """Every embedded PNG, decoded (fails on a broken one)."""
    images = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(png))
        image.load()
        images.append(image)
    assert html.count("<img") == len(images)  # no image from anywhere else
    return images


def _section(html: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S).group(1)


def test_pipeline_root_report_shows_lookups_through_the_index(pipeline_root, tmp_path):
    out = write_report(pipeline_root, tmp_path / "r.html")
    html = _read(out)
    _assert_self_contained(html)
    # `pinsage pipeline` evaluates each epoch: loss, evaluation and throughput
    assert len(_images(html)) == 3
    final = json.loads((pipeline_root / "run/eval.json").read_text())
    for key in ("recall@20", "ndcg@20", "hit_rate@10"):
        assert f'<th>{key}</th><td class="num">{final[key]:.4f}</td>' in html
    manifest = json.loads((pipeline_root / "manifest.json").read_text())
    assert manifest["config_sha256"] in html
    stages = _section(html, "stages")
    for name, stage in manifest["stages"].items():
        assert f'<td>{name}</td><td class="num">{stage["seconds"]:.2f}</td>' in stages
    index = Index.load(pipeline_root / "index")
    assert f"<th>kind</th><td>{index.manifest.kind}</td>" in html
    section = _section(html, "neighbours")
    samples = re.findall(r'<div class="sample"><h3>item ([^<]+)</h3>', section)
    assert len(samples) >= 3
    for sample, block in zip(
        samples, section.split('<div class="sample">')[1:], strict=True
    ):
        expected = index.similar([int(sample)], k=NEIGHBOURS_SHOWN)[0]["neighbors"]
        shown = re.findall(
            r'<tr class="[^"]*"><td class="num">\d+</td><td>([^<]+)</td>', block
        )
        assert shown == [str(n["item"]) for n in expected]
        assert "share the item&#x27;s planted cluster" in block
        assert "cat" in block and "[16 numbers]" in block  # category, embedding
    assert "Missing" not in html  # every part is there


def test_curves_final_metrics_published_figures_and_timings(handmade_root):
    out = write_report(handmade_root)
    assert out == handmade_root / "report.html"
    html = _read(out)
    _assert_self_contained(html)
    assert len(_images(html)) == 3  # loss, evaluation, throughput
    final = _section(html, "final")
    assert f"{FINAL['recall@20']:.4f}" in final and f"{FINAL['ndcg@20']:.4f}" in final
    assert "From run/eval.json." in final
    for figures in GOWALLA.rows.values():
        for value in figures:
            if value is not None:
                assert f"{value:.4f}" in final
    assert f"×{FINAL['recall@20'] / 0.1380:.2f}" in final  # relative to PinSage
    stages = _section(html, "stages")
    for name, seconds in TIMINGS.items():
        assert f'<td>{name}</td><td class="num">{seconds:.2f}</td>' in stages
    assert "skipped (already complete)" in stages
    assert f"{sum(TIMINGS.values()):.2f}" in stages
    for part in ("graph/: absent", "index/: absent", "embed, index"):
        assert part in html
    assert "0.1.0+gdeadbee" in html and "ab" * 32 in html


def test_final_metrics_fall_back_to_the_last_eval_row(handmade_root):
    (handmade_root / "run/eval.json").unlink()
    html = _read(write_report(handmade_root))
    final = _section(html, "final")
    assert "last evaluation row of run/metrics.jsonl (step 40)" in final
    assert f"{40 / 400:.4f}" in final and f"{40 / 500:.4f}" in final


def test_root_with_only_metrics_renders_and_says_what_is_missing(tmp_path):
    (tmp_path / "run").mkdir()
    rows = [{"step": s, "loss": 1.0 / s, "pairs_per_s": 10.0} for s in range(1, 6)]
    (tmp_path / "run/metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    html = _read(write_report(tmp_path))
    assert len(_images(html)) == 2
    for part in (
        "manifest.json: absent",
        "run/eval.json: absent",
        "graph/: absent",
        "embeddings/: absent",
        "index/: absent",
    ):
        assert part in html
    assert "No evaluation recorded." in html and "No index to look items up in." in html


def test_metrics_rows_keep_the_replayed_step_and_skip_a_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.0},
        {"step": 2, "loss": 1.5},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 3, "lo')
    rows, bad = read_metrics(path)
    assert [r["loss"] for r in rows] == [3.0, 1.5] and bad == 1


def test_text_from_the_root_is_escaped(handmade_root):
    manifest = json.loads((handmade_root / "manifest.json").read_text())
    manifest["dataset"] = "<script>alert(1)</script>"
    (handmade_root / "manifest.json").write_text(json.dumps(manifest))
    html = _read(write_report(handmade_root))
    assert "<script>" not in html and "&lt;script&gt;alert(1)" in html


def test_report_is_written_atomically(handmade_root, tmp_path):
    out = tmp_path / "deep" / "page.html"
    write_report(handmade_root, out)
    write_report(handmade_root, out)  # replaces the page in place
    assert [p.name for p in out.parent.iterdir()] == ["page.html"]


def test_not_a_run_root_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        collect_run(tmp_path / "nope")
    with pytest.raises(DataError, match="not a run root"):
        collect_run(tmp_path)


def test_cli_writes_the_report_and_maps_bad_roots_to_exit_2(
    handmade_root, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "cli.html"
    code, stdout, _ = run_cli(
        ["-q", "report", "--root", str(handmade_root), "--out", str(out)],
        monkeypatch,
        capsys,
    )
    assert code == 0 and stdout.strip() == str(out) and out.is_file()
    code, stdout, err = run_cli(
        ["report", "--root", str(tmp_path / "missing")], monkeypatch, capsys
    )
    assert code == 2 and stdout == ""
    assert "does not exist" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        ["report", "--root", str(tmp_path / "empty")], monkeypatch, capsys
    )
    assert code == 2 and "not a run root" in err


def test_features_come_from_the_graph_without_the_data_folder(pipeline_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(pipeline_root, root, ignore=shutil.ignore_patterns("data"))
    section = _section(_read(write_report(root)), "neighbours")
    assert "[16 numbers]" in section and "<td>cat" in section  # graph/features
    assert "<th>cluster</th>" not in section  # planted clusters were in data/


def test_final_metrics_sit_beside_the_baselines_of_the_same_evaluation(handmade_root):
    final = json.loads((handmade_root / "run/eval.json").read_text())
    final["baselines"] = {
        "popularity": {"users": 9, "recall@20": 0.0416, "ndcg@20": 0.0317},
        "gfcf": {"users": 9, "recall@20": 0.1849, "ndcg@20": 0.1518},
    }
    (handmade_root / "run/eval.json").write_text(json.dumps(final))
    html = _section(_read(write_report(handmade_root)), "final")
    assert "<h3>Baselines</h3>" in html and "baselines" not in html.split("<h3>")[1]
    for value in ("0.0416", "0.0317", "0.1849", "0.1518"):
        assert value in html
    assert f"×{final['recall@20'] / 0.1849:.2f}" in html
    assert f"×{final['recall@20'] / 0.0416:.2f}" in html
