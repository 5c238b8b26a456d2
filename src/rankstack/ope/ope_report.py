"""The ``rankstack ope`` HTML page: per evaluated policy, a table and a plot of every estimate with its interval."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankstack.io import write_text_atomic


def interval_chart(title: str, result: Mapping[str, Any]) -> bytes:
    """PNG: one row per estimator, the estimate with its bootstrap interval; the ground truth as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["estimators"])
    rows = [result["estimators"][n] for n in names]
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(names) + 1.4), dpi=110)
    for i, row in enumerate(rows):
        lo, hi = row["ci"]
        ax.plot([lo, hi], [i, i], color="tab:blue", linewidth=2)
        ax.plot(row["estimate"], i, "o", color="tab:blue")
    if result.get("ground_truth") is not None:
        ax.axvline(result["ground_truth"], color="tab:red", linestyle="--", label="ground truth (on-policy mean)")
        ax.legend(frameon=False, fontsize=8, loc="best")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("estimated policy value (bootstrap percentile interval)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _cell(value: Any) -> str:
    """A table cell: 4 significant digits for numbers, an interval as [lo, hi]."""
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def write_ope_report(path: Path, log_name: str, results: Mapping[str, Mapping[str, Any]]) -> Path:
    """A self-contained HTML page (embedded PNGs) for every evaluated policy in ``results``."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>rankstack ope: {html.escape(log_name)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:right}</style>",
             f"<h1>Off-policy evaluation from {html.escape(log_name)}</h1>"]
    for target, result in results.items():
        columns = ["estimate", "ci", "std", "relative_error_mean", "relative_error_std"]
        header = "".join(f"<th>{c}</th>" for c in ["estimator", *columns])
        body = "".join("<tr><th>" + html.escape(name) + "</th>" + "".join(
            f"<td>{_cell(row[c]) if c in row else ''}</td>" for c in columns) + "</tr>"
            for name, row in result["estimators"].items())
        png = base64.b64encode(interval_chart(target, result)).decode()
        truth = result.get("ground_truth")
        parts += [f"<h2>{html.escape(target)}</h2>",
                  f"<p>ground truth: {_cell(truth) if truth is not None else 'unknown'}</p>",
                  f"<table><tr>{header}</tr>{body}</table>", f"<img alt='{html.escape(target)}' "
                  f"src='data:image/png;base64,{png}'>",
                  "<p>support: " + html.escape(", ".join(f"{k}={_cell(v)}" for k, v in result["support"].items()))
                  + "</p>"]
    write_text_atomic(path, "\n".join(parts))
    return path
