"""``rankstack ope``: estimate policies' values from a logged bandit log with every off-policy estimator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rankstack.cli.common import console, err_console, friendly_errors
from rankstack.errors import ConfigError


def _estimator_names(text: str) -> list[str]:
    """``dm,ips,...`` → names (``all``: every estimator); ConfigError naming an unknown one."""
    from rankstack.ope.estimators import ALL_ESTIMATORS

    names = list(ALL_ESTIMATORS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_ESTIMATORS]
    if unknown or not names:
        raise ConfigError(f"--estimators: unknown {unknown or text!r}; expected 'all' or some of "
                          f"{', '.join(ALL_ESTIMATORS)}")
    return names


def _reward_c(text: str) -> float | None:
    """``auto`` → None (select by cross-validation), else a positive float; ConfigError otherwise."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"--reward-c must be a positive number or auto, got {text!r}")
    return value


def _table(target: str, result: dict[str, Any]) -> Table:
    """One Rich table per evaluated policy: estimate, interval, relative error."""
    truth = result["ground_truth"]
    title = f"{target}: ground truth {truth:.5f}" if truth is not None else f"{target}: no ground truth"
    table = Table(title=title, title_justify="left")
    for column in ("estimator", "estimate", "95% interval", "rel. error (mean ± std)"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, row in result["estimators"].items():
        error = (f"{row['relative_error_mean']:.3f} ± {row['relative_error_std']:.3f}"
                 if "relative_error_mean" in row else "")
        table.add_row(name, f"{row['estimate']:.5f}", f"[{row['ci'][0]:.5f}, {row['ci'][1]:.5f}]", error)
    return table


def _slate_table(target: str, result: dict[str, Any]) -> Table:
    """The slate estimators of one target: estimate and interval of the summed slate reward per request."""
    table = Table(title=f"{target}: slate estimators over {result['requests']} complete requests "
                        f"({result['incomplete_requests']} incomplete left out)", title_justify="left")
    for column in ("estimator", "estimate per slate", "95% interval", "ESS"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, row in result["estimators"].items():
        table.add_row(name, f"{row['estimate']:.5f}", f"[{row['ci'][0]:.5f}, {row['ci'][1]:.5f}]", f"{row['ess']:.1f}")
    return table


def ope(
    log: Annotated[str, typer.Option("--log", help="Logged data: a dataset name, an event-log file/folder in the "
                                                   "canonical columns, or the service's state store (.db).")],
    target: Annotated[list[str], typer.Option("--target", help="Policy to evaluate (repeatable): open-bandit, "
                                                               "open-bandit-bts, uniform, or a pipeline artifact "
                                                               "directory (its greedy slates).")],
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the resamples, folds and simulations.")] = 0,
    estimators: Annotated[str, typer.Option("--estimators", help="Comma-separated estimator names, or all.")] = "all",
    reward_model: Annotated[str, typer.Option("--reward-model", help="Reward model for DM/DR: logistic | multitask "
                                                                     "(the multi-task ranker's click head) | none.")]
    = "logistic",
    folds: Annotated[int, typer.Option("--folds", help="Cross-fitting folds of the reward model.")] = 3,
    reward_c: Annotated[str, typer.Option("--reward-c", help="Inverse L2 strength of the logistic reward model, or "
                                                             "auto: least cross-validated log loss on the log.")]
    = "auto",
    alpha: Annotated[float, typer.Option("--alpha", help="Interval level is 1 - alpha.")] = 0.05,
    tau: Annotated[float, typer.Option("--switch-tau", help="Switch-DR weight threshold.")] = 10.0,
    lam: Annotated[float, typer.Option("--dros-lambda", help="DRos shrinkage λ.")] = 1.0,
    logger: Annotated[str | None, typer.Option("--logger", help="The log's logging policy when it is known exactly "
                                                                "(uniform, ...): lets MIPS and the support report run; "
                                                                "default: known for registered logs only.")] = None,
    embedding: Annotated[str | None, typer.Option("--embedding", help="Item feature column MIPS marginalises "
                                                                      "over (default per dataset).")] = None,
    n_sim: Annotated[int, typer.Option("--n-sim", help="Monte-Carlo draws for a Thompson-sampling policy.")]
    = 100_000,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where datasets live.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for result.json and report.html "
                                                           "(default runs/ope-<time>).")] = None,
    slate: Annotated[bool, typer.Option("--slate", help="Also the slate estimators (independent IPS, PI, standard and "
                                                        "reward-interaction IPS where their inputs are known), over "
                                                        "requests that fill every slot.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Estimate policies' values from a logged bandit log with every off-policy estimator, with intervals."""
    with friendly_errors():
        if bootstrap < 2:
            raise ConfigError(f"--bootstrap must be at least 2, got {bootstrap}")
        if folds < 1:
            raise ConfigError(f"--folds must be at least 1, got {folds}")
        if not 0 < alpha < 1:
            raise ConfigError(f"--alpha must lie in (0, 1), got {alpha}")
        if reward_model not in ("logistic", "multitask", "none"):
            raise ConfigError(f"--reward-model must be logistic, multitask or none, got {reward_model!r}")
        c = _reward_c(reward_c)
        if tau < 0 or lam < 0:
            raise ConfigError("--switch-tau and --dros-lambda must be >= 0")
        results = _run(log, target, bootstrap, seed, _estimator_names(estimators), (reward_model, c), folds, alpha,
                       tau, lam, (logger, embedding), n_sim, data_dir, slate)
        folder = out or Path("runs") / time.strftime("ope-%Y%m%d-%H%M%S", time.gmtime())
        payload = results[target[0]] if len(target) == 1 else {"targets": results}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps({"log": log, **payload}, indent=2) + "\n", encoding="utf-8")
        from rankstack.ope.ope_report import write_ope_report

        write_ope_report(folder / "report.html", log, results)
    if json_out:
        print(json.dumps(payload))
        return
    for name, result in results.items():
        console.print(_table(name, result))
        if "slate" in result:
            console.print(_slate_table(name, result["slate"]))
    console.print(f"wrote {folder / 'result.json'} and {folder / 'report.html'}")


def _run(log: str, targets: list[str], n_boot: int, seed: int, names: list[str],
         reward_model: tuple[str, float | None], folds: int,
         alpha: float, tau: float, lam: float, mips: tuple[str | None, str | None], n_sim: int,
         data_dir: Path | None, slate: bool = False) -> dict[str, dict[str, Any]]:
    """Every target's result on the one log."""
    from rankstack.ope.estimators import make_estimator
    from rankstack.ope.ope_inputs import DEFAULT_EMBEDDING, LOGGERS, POLICIES, embedding_ids, load_log, policy_dist
    from rankstack.ope.policy_value import estimate_policy_value
    from rankstack.ope.reward_models import LogisticRewardModel, MultitaskRewardModel, RewardModel, select_c

    logger, embedding = mips
    from rankstack.experiments.pipeline_target import is_artifact

    unknown = [t for t in [*targets, *([logger] if logger else [])] if t not in POLICIES and
               not (t in targets and is_artifact(t))]
    if unknown:
        raise ConfigError(f"--target / --logger: unknown policy {unknown[0]!r}; expected one of {', '.join(POLICIES)} "
                          "or (--target) a pipeline artifact directory")
    loaded = load_log(log, data_dir)
    try:
        behavior = None
        if logger is not None:
            behavior = policy_dist(logger, loaded.log, n_sim=n_sim, seed=seed)
        elif loaded.name in LOGGERS:
            behavior = LOGGERS[loaded.name](loaded.log, n_sim, seed)
        column = embedding or DEFAULT_EMBEDDING.get(loaded.name)
        if column is not None and column not in loaded.item_columns:
            raise ConfigError(f"--embedding: item feature {column!r} not found; the log's item features are "
                              f"{sorted(loaded.item_columns) or 'none'}")
        action_embedding = embedding_ids(loaded.item_columns[column]) if column else None
        chosen = [make_estimator(n, tau=tau, lam=lam) for n in names]
        model_info: dict[str, Any] = {"name": reward_model[0]}
        make_model: Callable[[], RewardModel] | None = None
        if reward_model[0] == "logistic":
            c = reward_model[1]
            if c is None:
                c, losses = select_c(loaded.log, seed=seed)
                model_info["cv_log_loss"] = {str(k): v for k, v in losses.items()}
            model_info["c"] = c
            make_model = partial(LogisticRewardModel, c=c)
        elif reward_model[0] == "multitask":
            make_model = partial(MultitaskRewardModel, seed=seed)
        results = {}
        for name in targets:
            target_log, target_behavior, target_embedding, about = loaded.log, behavior, action_embedding, None
            if name not in POLICIES:  # a pipeline artifact
                target_log, dist, about = _pipeline_target(name, log, loaded.log, data_dir)
                if target_log is not loaded.log:  # its items extended the action axis: π_0 there is not known
                    target_behavior = target_embedding = None
            else:
                dist = policy_dist(name, loaded.log, n_sim=n_sim, seed=seed)
            truth = None
            if name in REGISTRY_LOGS:
                truth = float(load_log(name, data_dir).log.reward.mean())
            results[name] = estimate_policy_value(
                target_log, dist, chosen, make_model=make_model, n_boot=n_boot, seed=seed,
                alpha=alpha, folds=folds, ground_truth=truth, behavior_dist=target_behavior,
                action_embedding=target_embedding, label=f"ope {name}")
            results[name]["reward_model"] = model_info
            if slate:
                from rankstack.ope.slate_value import estimate_slate_value

                uniform = target_log is loaded.log and (logger == "uniform" or (logger is None and
                                                                                  loaded.name in LOGGERS))
                results[name]["slate"] = estimate_slate_value(target_log, dist, logger_uniform=uniform,
                                                              n_boot=n_boot, seed=seed, level=1 - alpha)
            if about is not None:
                results[name]["pipeline"] = about
                if about["never_logged_share"] > 0:
                    err_console.print(f"warning: {about['never_logged_share']:.1%} of {name}'s (item, slot) choices "
                                      f"are items {loaded.name} never shows; IPS-type estimates miss that part")
            skipped = [n for n in names if n not in results[name]["estimators"]]
            if skipped:
                err_console.print(f"skipped {', '.join(skipped)}: no reward model or no logging policy / embedding "
                                  f"known for {loaded.name}")
            deficit = results[name]["support"]["uncovered_target_mass"]
            if deficit:
                err_console.print(f"warning: {name} puts {deficit:.3%} of its mass on actions {loaded.name}'s logger "
                                  "never shows; IPS-type estimates miss that part (support violation)")
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from None
    return results


def _pipeline_target(path: str, spec: str, log: Any, data_dir: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    """(the log, on an axis extended by the pipeline's never-logged items; π_e; about the target) of an artifact."""
    from rankstack.experiments.pipeline_target import extended_axis, greedy_slates, pipeline_action_dist
    from rankstack.ope.ope_inputs import load_log
    from rankstack.pipeline.pipeline import Pipeline

    pipeline = Pipeline.load(path)
    try:
        slates = greedy_slates(pipeline, log)
    finally:
        pipeline.close()
    axis = extended_axis(log.items, slates)
    if len(axis) != len(log.items):
        log = load_log(spec, data_dir, items=axis).log
    dist, about = pipeline_action_dist(log, slates)
    return log, dist, {**about, "version": pipeline.version}


# targets that are a registered log's own logging policy: that log's mean reward is the ground truth
REGISTRY_LOGS = ("open-bandit", "open-bandit-bts")
