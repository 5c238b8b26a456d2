"""The closed loop's outputs: a plot of estimate vs realised value per seed and a markdown table of the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_estimates(result: dict[str, Any], path: Path) -> Path:
    """Estimate (95 % interval as error bar) against realised value, one point per seed, the headline candidate and
    estimator, with the y = x line and the ±10 % band (matplotlib, written as PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = result["settings"]
    key = f"{settings['candidate_click_weights'][0]:g}"
    name = settings["estimator"]
    rows = [(s["candidates"][key]["realised"], s["candidates"][key]["estimators"][name]) for s in result["seeds"]]
    realised = [r for r, _ in rows]
    estimate = [e["estimate"] for _, e in rows]
    below = [e["estimate"] - e["ci"][0] for _, e in rows]
    above = [e["ci"][1] - e["estimate"] for _, e in rows]
    inside = [e["inside"] for _, e in rows]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo = min(min(realised), min(e["ci"][0] for _, e in rows)) * 0.97
    hi = max(max(realised), max(e["ci"][1] for _, e in rows)) * 1.03
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="estimate = realised")
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="grey", alpha=0.15, label="±10 %")
    for flag, colour, label in ((True, "tab:blue", "realised inside the 95 % interval"),
                                (False, "tab:red", "realised outside")):
        idx = [i for i, f in enumerate(inside) if f == flag]
        if idx:
            ax.errorbar([realised[i] for i in idx], [estimate[i] for i in idx],
                        yerr=[[below[i] for i in idx], [above[i] for i in idx]], fmt="o", color=colour, capsize=3,
                        label=label)
    unit = f"{settings['metric']} per 1,000 impressions"
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("realised value after deployment (simulator truth)")
    ax.set_ylabel(f"off-policy estimate from the log ({name})")
    ax.set_title(f"closed loop, {len(rows)} seeds: candidate click weight {key}\n{unit}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown_table(result: dict[str, Any]) -> str:
    """One row per candidate and estimator: mean and max |relative error|, seeds within 10 %, seeds inside the 95 %
    interval, mean interval width relative to the realised value."""
    lines = ["| candidate click weight | estimator | mean abs. rel. error | max abs. rel. error | mean rel. error | "
             "within 10 % | realised inside 95 % CI | mean CI width / realised |",
             "|---|---|---|---|---|---|---|---|"]
    for key, cand in result["summary"]["candidates"].items():
        for name, s in cand["estimators"].items():
            lines.append(f"| {key} | {name} | {s['mean_abs_relative_error']:.3f} | {s['max_abs_relative_error']:.3f} | "
                         f"{s['mean_relative_error']:+.3f} | {s['within_10pct']}/{s['seeds']} | "
                         f"{s['inside_ci']}/{s['seeds']} | {s['mean_ci_width_relative']:.3f} |")
    return "\n".join(lines)


def tuning_table(result: dict[str, Any]) -> str:
    """Per seed: the click weight chosen by the off-policy estimate and by the truth, and their realised values."""
    tune = result["summary"].get("tuning")
    if tune is None:
        return ""
    lines = ["| seed | chosen by OPE | its realised value | chosen by the truth | its realised value |",
             "|---|---|---|---|---|"]
    for row in tune["per_seed"]:
        lines.append(f"| {row['seed']} | {row['ope_choice']:g} | {row['ope_choice_realised']:.2f} | "
                     f"{row['truth_choice']:g} | {row['truth_choice_realised']:.2f} |")
    return "\n".join(lines)
