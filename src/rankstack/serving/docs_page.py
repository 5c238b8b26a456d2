"""``GET /docs``: the API at a glance as one self-contained page (no scripts, styles or fonts from elsewhere).

FastAPI's default ``/docs`` and ``/redoc`` pages load Swagger UI / ReDoc from a CDN, so without internet they
are blank. The only Python package that bundles Swagger UI (``swagger-ui-bundle`` 1.1.0) ships 4.15.5, which
cannot render the OpenAPI 3.1 schema FastAPI publishes; so this page lists every operation with its summary,
request body and responses, and links ``/openapi.json`` for any OpenAPI viewer.
"""

from __future__ import annotations

import html
from typing import Any

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}code{{background:#eee}}
h2{{font-size:1.1em;margin-top:1.5em}} .m{{font-weight:bold;text-transform:uppercase}}</style></head>
<body><h1>{title} {version}</h1><p>{summary}</p>
<p>The OpenAPI schema is at <a href="{openapi_url}"><code>{openapi_url}</code></a>: open it in any OpenAPI viewer
(Swagger UI, ReDoc, an IDE). This page needs no internet access; an interactive console would load its scripts
from a CDN, so none is served here.</p>
{operations}
</body></html>
"""


def _ref_name(schema: dict[str, Any]) -> str:
    """``#/components/schemas/Name`` → ``Name``; an inline schema → its title or type."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return str(schema.get("title") or schema.get("type") or "JSON")


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    """One operation as a heading, its description, its body model and its documented statuses."""
    parts = [f'<h2><span class="m">{html.escape(method)}</span> <code>{html.escape(path)}</code></h2>']
    text = op.get("description") or op.get("summary") or ""
    if text:
        parts.append(f"<p>{html.escape(text)}</p>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>Body: <code>{html.escape(_ref_name(body))}</code> (JSON)</p>")
    statuses = []
    for status, response in op.get("responses", {}).items():
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        shape = f" <code>{html.escape(_ref_name(schema))}</code>" if schema else ""
        statuses.append(f"<li>{html.escape(str(status))}: {html.escape(response.get('description', ''))}{shape}</li>")
    if statuses:
        parts.append("<ul>" + "".join(statuses) + "</ul>")
    return "\n".join(parts)


def docs_html(spec: dict[str, Any], openapi_url: str) -> str:
    """The page for an OpenAPI ``spec``."""
    info = spec.get("info", {})
    operations = [_operation(path, method, op) for path, item in spec.get("paths", {}).items()
                  for method, op in item.items() if isinstance(op, dict)]
    return PAGE.format(title=html.escape(info.get("title", "API")), version=html.escape(str(info.get("version", ""))),
                       summary=html.escape(info.get("summary", "")), openapi_url=html.escape(openapi_url),
                       operations="\n".join(operations))
