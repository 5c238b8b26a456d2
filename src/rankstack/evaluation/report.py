"""Self-contained HTML reports: metric tables, a metrics chart (embedded PNG), how each model's training went
(epochs, best epoch, why it stopped, the validation curve and its chart) and example lists."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rankstack.evaluation.fit_summary import FitSummary
from rankstack.io import write_text_atomic


@dataclass(frozen=True)
class UserExample:
    """One user's recent history and recommendation lists (titles), for the report."""

    user: str
    history: Sequence[str]
    lists: Mapping[str, Sequence[tuple[str, bool]]]  # model → [(title, is_hit)]


def metrics_chart(results: Mapping[str, Mapping[str, float]], metrics: Sequence[str]) -> bytes:
    """Grouped bar chart (PNG bytes): one group per metric, one bar per model."""
    models = list(results)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(metrics), 3.6), dpi=110)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(metrics))
    for i, model in enumerate(models):
        values = [results[model].get(m, 0.0) for m in metrics]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, values, width, label=model)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("mean over test users")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png(fig)


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def curves_chart(training: Mapping[str, FitSummary]) -> bytes | None:
    """Validation metric against epoch (PNG bytes), one line per model with a curve, its best epoch marked;
    None when no model has a curve."""
    curves = {name: s for name, s in training.items() if s.curve}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    for name, summary in curves.items():
        epochs, values = zip(*summary.curve, strict=True)
        line = ax.plot(epochs, values, marker=".", label=f"{name} ({summary.metric})")[0]
        best = summary.best_epoch
        if best is not None and best in epochs:
            ax.plot([best], [values[epochs.index(best)]], "o", color=line.get_color(),
                    fillstyle="none", markersize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation metric (circle: kept epoch)")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png(fig)


def training_section(training: Mapping[str, FitSummary]) -> str:
    """The HTML "Training" section: per model epochs run, best epoch, why it stopped, fit wall time, the
    validation curve (compact) and any warning; then the curves' chart."""
    rows = []
    for name, s in training.items():
        warning = s.warning()
        cells = [str(s.epochs_run) + (f" of {s.epochs}" if s.epochs else ""),
                 "-" if s.best_epoch is None else str(s.best_epoch), s.stopped_by,
                 "-" if s.wall_s is None else f"{s.wall_s:.1f} s", s.curve_text()]
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(f'<td>{html.escape(c)}</td>' for c in cells)}</tr>"
                    + (f"<tr><td colspan=6 class=warn>⚠ {html.escape(warning)}</td></tr>" if warning else ""))
    head = "".join(f"<th>{h}</th>" for h in ("model", "epochs run", "best epoch", "stopped by", "fit wall",
                                              "validation curve (epoch:value)"))
    chart = curves_chart(training)
    img = (f"<img alt='validation curves' src='data:image/png;base64,{base64.b64encode(chart).decode()}'>"
           if chart is not None else "")
    return f"<h2>Training</h2><table><tr>{head}</tr>{''.join(rows)}</table>{img}"


def _table(results: Mapping[str, Mapping[str, float]], metrics: Sequence[str]) -> str:
    best = {m: max(r.get(m, float("-inf")) for r in results.values()) for m in metrics}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for model, values in results.items():
        cells = "".join(
            f"<td{' class=best' if values.get(m) == best[m] else ''}>{values.get(m, float('nan')):.4f}</td>"
            for m in metrics
        )
        rows.append(f"<tr><th>{html.escape(model)}</th>{cells}</tr>")
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


def _examples(examples: Sequence[UserExample]) -> str:
    parts = []
    for ex in examples:
        history = ", ".join(html.escape(t) for t in ex.history)
        lists = "".join(
            f"<div class=list><h4>{html.escape(model)}</h4><ol>"
            + "".join(f"<li{' class=hit' if hit else ''}>{html.escape(title)}</li>" for title, hit in items)
            + "</ol></div>"
            for model, items in ex.lists.items()
        )
        parts.append(
            f"<section><h3>User {html.escape(ex.user)}</h3><p><b>Recently:</b> {history}</p>"
            f"<div class=lists>{lists}</div></section>"
        )
    return "".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child{text-align:left}.best{font-weight:bold;background:#e8f4e8}.lists{display:flex;gap:1.5em;flex-wrap:wrap}
.list{min-width:250px}.hit{background:#ffe9a8}.meta{color:#666;font-size:.9em}img{max-width:100%}
.warn{text-align:left;background:#fff3cd}"""


def write_report(
    path: Path,
    *,
    title: str,
    results: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    meta: Mapping[str, str],
    examples: Sequence[UserExample] = (),
    training: Mapping[str, FitSummary] | None = None,
) -> Path:
    """Write one self-contained HTML file (charts embedded as base64 PNG) atomically; return its path.
    ``training``: each model's :class:`FitSummary`, shown in a Training section."""
    chart = base64.b64encode(metrics_chart(results, metrics)).decode()
    meta_html = "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(v)}</li>" for k, v in meta.items())
    body = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul class=meta>{meta_html}</ul>"
        f"<h2>Metrics</h2>{_table(results, metrics)}"
        f"<img alt='metrics chart' src='data:image/png;base64,{chart}'>"
        + (training_section(training) if training else "")
        + (f"<h2>Example recommendations</h2><p class=meta>Highlighted: the user's held-out item.</p>"
           f"{_examples(examples)}" if examples else "")
        + "</body></html>"
    )
    write_text_atomic(path, body)
    return path
