"""Render a run's report as one self-contained HTML page.

Figures are embedded as base64 ``data:`` URIs and the CSS is inline: the page loads
no external resource, so it can be mailed, attached to a ticket or opened offline.
Every piece of text from the run root is escaped (`html.escape`).
"""

from __future__ import annotations

import base64
from html import escape

from pinsage.report.collect import RunData
from pinsage.report.neighbors import SampleLookup
from pinsage.report.plots import Plot
from pinsage.report.published import PublishedTable, published_for

__all__ = ["render_page"]

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1f2328; margin: 0; background: #f6f8fa; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 0 0 6px; }
section, header { background: #fff; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 4px 18px 16px; margin-top: 16px; }
header { padding-top: 16px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid #eaeef2; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { background: none; color: #57606a; font-weight: 500; }
table.meta td.num { text-align: left; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.missing { background: #fff8e5; border-left: 4px solid #d4a72c; padding: 8px 14px;
  margin: 12px 0 0; }
.missing ul { margin: 4px 0; padding-left: 20px; }
.note { color: #57606a; font-size: 13px; }
.figures { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.figures .wide { grid-column: 1 / -1; }
figure { margin: 0; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #57606a; font-size: 13px; margin-top: 4px; }
.side { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
.sample { margin-top: 18px; }
tr.query td { background: #eaf2fd; font-weight: 600; }
tr.same td { background: #eef8ee; }
tr.ours td { font-weight: 600; }
"""


def _e(value: object) -> str:
    return escape(str(value))


def _fmt(value: object) -> str:
    """A value as a table shows it: floats to 4 places below 1, else 2."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


class _Number(str):
    """A number already formatted (say seconds to 2 places): right-aligned as one."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | _Number) and not isinstance(value, bool)


def _cell(value: object) -> str:
    text = _e(_fmt(value))
    return f'<td class="num">{text}</td>' if _is_number(value) else f"<td>{text}</td>"


def _table(
    head: list[str], rows: list[list[object]], classes: list[str] | None = None
) -> str:
    """A table of values (numbers right-aligned); ``classes`` gives each row's."""
    numeric_cols = {
        i
        for i in range(len(head))
        if rows and all(_is_number(r[i]) for r in rows if r[i] is not None)
    }
    head_html = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric_cols else f"<th>{_e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(
        f'<tr class="{_e(cls)}">' + "".join(map(_cell, row)) + "</tr>"
        for row, cls in zip(rows, classes or [""] * len(rows), strict=True)
    )
    return f"<table><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table>"


def _value_of(key: str, value: object) -> object:
    """Durations (``*seconds``) to 2 places, whatever their size."""
    timed = key.endswith("seconds") and isinstance(value, int | float)
    return _seconds(value) if timed else value


def _key_values(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th>{_cell(_value_of(k, v))}</tr>" for k, v in pairs
    )
    return f'<table class="meta"><tbody>{rows}</tbody></table>'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _header(data: RunData) -> str:
    meta = _key_values(
        [
            ("dataset", data.dataset or "not recorded"),
            ("config sha256", data.config_sha256 or "not recorded"),
            ("code version", data.code_version or "not recorded"),
            ("run finished", data.finished or "not recorded"),
            ("report made", data.generated),
            ("run root", data.root.resolve()),
        ]
    )
    missing = ""
    if data.missing:
        items = "".join(f"<li>{_e(m)}</li>" for m in data.missing)
        missing = f'<div class="missing"><b>Missing</b><ul>{items}</ul></div>'
    title = f"pinsage run report: {data.root.resolve().name}"
    return f"<header><h1>{_e(title)}</h1>{meta}{missing}</header>"


def _seconds(value: float | None) -> _Number | None:
    return None if value is None else _Number(f"{value:,.2f}")


def _stages(data: RunData) -> str:
    if not data.stages:
        return _section("Stages", _note("No stage timings recorded."), "stages")
    status = {True: "skipped (already complete)", False: "ran", None: "–"}
    rows: list[list[object]] = [
        [
            s.name,
            _seconds(s.seconds),
            f"skipped: {s.reason}" if s.reason else status.get(s.skipped, "–"),
            s.finished,
        ]
        for s in data.stages
    ]
    rows.append(["total", _seconds(sum(s.seconds or 0.0 for s in data.stages)), "", ""])
    table = _table(
        ["stage", "seconds", "this time", "finished (UTC)"],
        rows,
        [""] * len(data.stages) + ["ours"],
    )
    note = _note("A skipped stage keeps the seconds of the run that did its work.")
    return _section("Stages", table + note, "stages")


def _figures(plots: list[Plot]) -> str:
    if not plots:
        return _section("Training", _note("No training rows to plot."), "training")
    figures = "".join(
        f'<figure class="{"wide" if p.wide else ""}"><h3>{_e(p.title)}</h3>'
        f'<img alt="{_e(p.title)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{_e(p.caption)}</figcaption></figure>"
        for p in plots
    )
    return _section("Training", f'<div class="figures">{figures}</div>', "training")


def _published(table: PublishedTable, final: dict) -> str:
    ours = [final.get(m) for m in table.metrics]
    rows: list[list[object]] = [["this run", *ours, ""]]
    first = table.metrics[0]
    for model, figures in table.rows.items():
        ratio = (
            f"×{ours[0] / figures[0]:.2f}"
            if isinstance(ours[0], int | float) and figures[0]
            else "–"
        )
        rows.append([model, *figures, ratio])
    head = ["model", *table.metrics, f"this run's {first} relative to it"]
    classes = ["ours"] + [""] * len(table.rows)
    return (
        f"<div><h3>Published: {_e(table.dataset)}</h3>"
        f"{_table(head, rows, classes)}{_note('Source: ' + table.source)}</div>"
    )


def _baselines(data: RunData) -> str:
    """The run beside the training-free baselines of the same evaluation."""
    metrics = [k for k in data.final_metrics if k.startswith(("recall@", "ndcg@"))]
    if not data.baselines or not metrics:
        return ""
    first = metrics[0]
    rows: list[list[object]] = [
        ["this run", *(data.final_metrics[m] for m in metrics), ""]
    ]
    for name, scores in data.baselines.items():
        base = scores.get(first)
        ratio = f"×{data.final_metrics[first] / base:.2f}" if base else "–"
        rows.append([name, *(scores.get(m) for m in metrics), ratio])
    head = ["model", *metrics, f"this run's {first} relative to it"]
    note = _note(
        "Training-free baselines ranked on the same graph and test file "
        "(pinsage.eval.baselines): popularity, cosine item-kNN, GF-CF, and content "
        "(item-kNN over the item features) where the run asked for it."
    )
    classes = ["ours"] + [""] * len(data.baselines)
    return f"<div><h3>Baselines</h3>{_table(head, rows, classes)}{note}</div>"


def _final(data: RunData) -> str:
    if not data.final_metrics:
        return _section("Final metrics", _note("No evaluation recorded."), "final")
    metrics = (
        f"<div><h3>This run</h3>"
        f"{_key_values(list(data.final_metrics.items()))}"
        f"{_note('From ' + str(data.final_source) + '.')}</div>"
    )
    table = published_for(data.dataset)
    published = _published(table, data.final_metrics) if table else ""
    baselines = _baselines(data)
    return _section(
        "Final metrics",
        f'<div class="side">{metrics}{baselines}{published}</div>',
        "final",
    )


def _artifacts(data: RunData) -> str:
    parts = []
    if data.graph is not None:
        g = data.graph
        features = ", ".join(f["name"] for f in g.features) or "none"
        parts.append(
            "<div><h3>Graph</h3>"
            + _key_values(
                [
                    ("items", g.num_items),
                    ("users (contexts)", g.num_contexts),
                    ("edges", g.num_edges),
                    ("item features", features),
                ]
            )
            + "</div>"
        )
    if data.embeddings is not None:
        e = data.embeddings
        pairs = [("count", e.count), ("dim", e.dim), ("engine", e.engine)]
        pairs.append(("created", e.created))
        parts.append(f"<div><h3>Embeddings</h3>{_key_values(pairs)}</div>")
    if data.index is not None:
        i = data.index
        pairs = [("kind", i.kind), ("factory", i.factory), ("count", i.count)]
        pairs += [("dim", i.dim), ("recall@10", i.recall_at_10)]
        pairs.append(("build_seconds", i.build_seconds))
        search = i.search_params or "exact search"
        pairs.append(("search parameters", search))
        parts.append(f"<div><h3>Index</h3>{_key_values(pairs)}</div>")
    if not parts:
        return _section(
            "Artifacts", _note("No graph, embeddings or index."), "artifacts"
        )
    note = _note(
        "recall@10: the index's neighbours against exact search, measured at build."
    )
    return _section(
        "Artifacts", f'<div class="side">{"".join(parts)}</div>{note}', "artifacts"
    )


def _sample(lookup: SampleLookup, feature_names: list[str]) -> str:
    """The query item as the first row, then its neighbours: columns line up."""
    query = lookup.query
    has_clusters = query.cluster is not None
    head = ["#", "item", "score", *(["cluster"] if has_clusters else [])]
    rows, classes = [], ["query"]
    for rank, view in enumerate([query, *lookup.neighbors]):
        cluster = [view.cluster] if has_clusters else []
        features = [view.features.get(name, "–") for name in feature_names]
        # str(item): an id is a label, never "1,234"
        rows.append([rank or "query", str(view.item), view.score, *cluster, *features])
        if rank:
            same = has_clusters and view.cluster == query.cluster
            classes.append("same" if same else "")
    same = lookup.same_cluster()
    note = (
        _note(f"{same} of {len(lookup.neighbors)} share the item's planted cluster.")
        if same is not None
        else ""
    )
    return (
        f'<div class="sample"><h3>item {_e(query.item)}</h3>'
        f"{_table([*head, *feature_names], rows, classes)}{note}</div>"
    )


def _neighbors(data: RunData) -> str:
    if not data.samples:
        body = _note("No index to look items up in.")
        return _section("Nearest neighbours", body, "neighbours")
    names = list(
        dict.fromkeys(
            name
            for s in data.samples
            for v in (s.query, *s.neighbors)
            for name in v.features
        )
    )
    intro = _note(
        "A few items of typical popularity and their nearest items by the trained "
        "embeddings, looked up through the index (score: cosine similarity), with "
        "their features"
        + (
            " and planted clusters (rows sharing the item's are green)."
            if data.samples[0].query.cluster is not None
            else "."
        )
    )
    body = intro + "".join(_sample(s, names) for s in data.samples)
    return _section("Nearest neighbours", body, "neighbours")


def render_page(data: RunData, plots: list[Plot]) -> str:
    """The report page of ``data`` with ``plots`` embedded, as one HTML string."""
    title = f"pinsage report: {data.root.resolve().name}"
    body = "".join(
        [
            _header(data),
            _stages(data),
            _figures(plots),
            _final(data),
            _artifacts(data),
            _neighbors(data),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
