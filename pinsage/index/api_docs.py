"""The service's documentation page, served from the OpenAPI schema with no CDN.

FastAPI's /docs loads Swagger UI's script and styles from a CDN: on a machine
without internet access (a cluster node, an air-gapped service) the page stays
blank. This page is plain HTML rendered on the server from the same OpenAPI schema
(`/openapi.json`): each endpoint with its summary, description, parameters, request
body and responses, and nothing to fetch.
"""

from __future__ import annotations

from html import escape

__all__ = ["render_docs"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
    "color:#222}code{background:#f3f3f3;padding:0 .2em}section{border-top:1px solid"
    " #ddd;padding:.5em 0}.m{font-weight:bold;color:#fff;background:#456;"
    "padding:.1em .4em;border-radius:3px}"
)


def _schema_name(schema: dict) -> str:
    """A schema reference's model name, or its type."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    return schema.get("type", "object")


def _operation(path: str, method: str, op: dict) -> str:
    params = "".join(
        f"<li><code>{escape(p['name'])}</code> ({escape(p['in'])}, "
        f"{escape(_schema_name(p.get('schema', {})))}"
        f"{', required' if p.get('required') else ''})</li>"
        for p in op.get("parameters", [])
    )
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    responses = "".join(
        f"<li><code>{escape(code)}</code> {escape(r.get('description', ''))}"
        + (
            f": <code>{escape(_schema_name(c['schema']))}</code>"
            if (c := r.get("content", {}).get("application/json")) and "schema" in c
            else ""
        )
        + "</li>"
        for code, r in op.get("responses", {}).items()
    )
    return (
        f"<section><h2><span class=m>{method.upper()}</span> <code>{escape(path)}"
        f"</code></h2><p><b>{escape(op.get('summary', ''))}</b></p>"
        f"<p>{escape(op.get('description', ''))}</p>"
        + (f"<p>Parameters:</p><ul>{params}</ul>" if params else "")
        + (
            f"<p>Body: <code>{escape(_schema_name(body['schema']))}</code></p>"
            if body
            else ""
        )
        + f"<p>Responses:</p><ul>{responses}</ul></section>"
    )


def render_docs(schema: dict) -> str:
    """The HTML page for an OpenAPI ``schema`` (as `FastAPI.openapi` returns it)."""
    info = schema.get("info", {})
    operations = "".join(
        _operation(path, method, op)
        for path, methods in schema.get("paths", {}).items()
        for method, op in methods.items()
    )
    models = "".join(
        f"<li><code>{escape(name)}</code>: "
        + ", ".join(
            f"{escape(field)} ({escape(_schema_name(spec))})"
            for field, spec in model.get("properties", {}).items()
        )
        + "</li>"
        for name, model in schema.get("components", {}).get("schemas", {}).items()
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>"
        f"{escape(info.get('title', 'API'))}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(info.get('title', 'API'))}</h1>"
        f"<p>{escape(info.get('description', ''))}</p><p>The machine-readable "
        "schema: <a href=/openapi.json><code>/openapi.json</code></a>.</p>"
        f"{operations}<h2>Models</h2><ul>{models}</ul></body></html>"
    )
