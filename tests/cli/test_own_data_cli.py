"""Your own data through the command line (issue #15's contract): a split column, no timestamps, headerless text,
sequences, renamed columns, split files, missing-value spellings, repeats, ``data inspect`` and pipeline YAML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rankstack.cli import app

runner = CliRunner(env={"COLUMNS": "300", "RANKSTACK_QUIET": "1"})
EVALUATE = ["evaluate", "--model", "popular", "--json"]


def histories(n_users: int = 40, length: int = 6) -> list[tuple[str, list[str]]]:
    """Each user's items in time order (seeded): ``u0 → [i3, i17, …]``."""
    rng = np.random.default_rng(0)
    return [(f"u{u}", [f"i{i}" for i in rng.choice(30, size=length, replace=False)]) for u in range(n_users)]


def rows(split: bool = False) -> list[list[str]]:
    """One row per event, users in turn; with ``split``, each user's last event is test, the one before validation."""
    out = []
    for user, items in histories():
        for n, item in enumerate(items):
            part = "test" if n == len(items) - 1 else "validation" if n == len(items) - 2 else "train"
            out.append([user, item, *([part] if split else [])])
    return out


def write(path: Path, header: str | None, lines: list[list[str]], sep: str = ",") -> Path:
    """Write ``lines`` (with ``header`` first, if any) to ``path``."""
    text = "".join(sep.join(line) + "\n" for line in lines)
    path.write_text((header + "\n" if header else "") + text)
    return path


def evaluate(*args: str) -> dict[str, object]:
    """``rankstack evaluate --model popular --json ARGS``; its JSON ``dataset`` entry."""
    result = runner.invoke(app, [*EVALUATE, *args])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert isinstance(record["dataset"], dict)
    return record["dataset"]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, as the contract's commands do (``log.csv``, ``runs/``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_split_column_is_used_without_a_flag(here: Path) -> None:
    write(here / "log.csv", "user_id,item_id,split", rows(split=True))
    info = evaluate("--dataset", "log.csv")
    assert info["split"] == "predefined" and info["split_reason"] == "the data has a 'split' column"
    top = json.loads(runner.invoke(app, [*EVALUATE, "--dataset", "log.csv"]).stdout)
    assert top["split"] == "predefined"  # the contract's "split": "predefined", at the top of the JSON too
    assert info["split_sizes"] == {"train": 160, "validation": 40, "test": 40}
    text = runner.invoke(app, ["evaluate", "--model", "popular", "--dataset", "log.csv"]).output
    assert "split predefined (the data has a 'split' column)" in " ".join(text.split())


def test_no_timestamp_fails_naming_it_unless_an_order_or_split_is_asked_for(here: Path) -> None:
    write(here / "log.csv", "user_id,item_id", rows())
    result = runner.invoke(app, [*EVALUATE, "--dataset", "log.csv"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "log.csv, column 'timestamp': 240 of 240 events have no timestamp" in " ".join(result.output.split())
    by_file = evaluate("--dataset", "log.csv", "--order", "file")
    assert by_file["split"] == "leave_one_out" and "order 'file' was given" in str(by_file["split_reason"])
    assert evaluate("--dataset", "log.csv", "--split", "random")["split"] == "random"


def test_sequences_are_one_user_per_line_in_time_order(here: Path) -> None:
    write(here / "seqs.txt", None, [[user, *items] for user, items in histories()], sep=" ")
    info = evaluate("--dataset", "seqs.txt", "--format", "sequences")
    assert (info["users"], info["events"], info["split"]) == (40, 240, "leave_one_out")
    assert "sequences lines are in time order" in str(info["split_reason"])
    read = info["read"]
    assert isinstance(read, dict) and (read["format"], read["order"]) == ("sequences", "file")


def test_pairs_and_renamed_columns(here: Path) -> None:
    write(here / "pairs.txt", None, rows(), sep="\t")
    info = evaluate("--dataset", "pairs.txt", "--format", "pairs", "--order", "file")
    assert (info["users"], info["events"], info["split"]) == (40, 240, "leave_one_out")
    implied = evaluate("--dataset", "pairs.txt", "--format", "pairs")  # no timestamp field: file order, said so
    assert implied["split_sizes"] == info["split_sizes"] and implied["read"]["order"] == "file"  # type: ignore[index]
    assert "pairs lines without a timestamp are read in file order" in str(implied["split_reason"])
    timed = [[user, item, str(1_700_000_000 + n)] for n, (user, item) in enumerate(rows())]
    write(here / "renamed.csv", "uid,iid,ts", timed)
    mapped = evaluate("--dataset", "renamed.csv", "--columns", "user_id=uid,item_id=iid,timestamp=ts")
    assert mapped["split"] == "leave_one_out" and mapped["split_sizes"] == {"train": 160, "validation": 40,
                                                                             "test": 40}
    assert mapped["read"]["columns"] == {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}  # type: ignore[index]
    unmapped = runner.invoke(app, [*EVALUATE, "--dataset", "renamed.csv"])
    assert unmapped.exit_code == 2 and "--columns user_id=uid,item_id=iid" in unmapped.output


def test_separate_split_files(here: Path) -> None:
    split = rows(split=True)
    for part in ("train", "validation", "test"):
        write(here / f"{part}.txt", None, [line[:2] for line in split if line[2] == part], sep=" ")
    info = evaluate("--dataset", "train.txt", "--format", "pairs", "--validation-file", "validation.txt",
                    "--test-file", "test.txt")
    assert info["split"] == "predefined" and info["split_sizes"] == {"train": 160, "validation": 40, "test": 40}
    assert info["split_reason"] == "separate train/validation/test files were given"


def test_missing_spellings_and_repeats(here: Path) -> None:
    lines = [[str(t) for t in line] for line in rows()]
    write(here / "nan.csv", "user_id,item_id", [*lines[:5], ["u1", "NaN"], *lines[5:]])
    result = runner.invoke(app, [*EVALUATE, "--dataset", "nan.csv", "--order", "file"])
    assert result.exit_code == 2
    assert "nan.csv, column 'item_id', row 6: null or empty id: 'NaN' is read as a missing value" in \
        " ".join(result.output.split())
    write(here / "dups.csv", "user_id,item_id", [*lines, lines[0]])
    stopped = runner.invoke(app, [*EVALUATE, "--dataset", "dups.csv", "--split", "random", "--duplicates", "error"])
    assert stopped.exit_code == 2 and "row 241 repeats row 1" in stopped.output and "--duplicates drop" in \
        stopped.output
    dropped = runner.invoke(app, [*EVALUATE, "--dataset", "dups.csv", "--split", "random"])  # the default
    assert dropped.exit_code == 0 and "dropped 1 repeated row(s)" in " ".join(dropped.stderr.split())
    record = json.loads(dropped.stdout)
    assert record["dataset"]["events"] == 240 and record["dataset"]["read"]["duplicates"] == 1


BAD = [
    ("columns without =", ["--columns", "user_id"], "expected canonical=column pairs"),
    ("unknown column name", ["--columns", "usr=u"], "unknown column name(s) ['usr']"),
    ("validation without test", ["--validation-file", "v.csv"], "validation_file needs a test_file"),
    ("unknown format", ["--format", "xml"], "'xml' is not one of 'auto', 'csv'"),
    ("unknown order", ["--order", "random"], "'random' is not one of 'time', 'file'"),
    ("unknown duplicates", ["--duplicates", "keep"], "'keep' is not one of 'error', 'drop'"),
    ("text file without a format", ["--dataset", "{tmp}/log.txt"], "pass a format"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_read_options_are_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "log.txt").write_text("u1 a\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    base = [] if "--dataset" in args else ["--dataset", str(tmp_path / "log.txt")]
    result = runner.invoke(app, [*EVALUATE, *base, *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in " ".join(result.output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def test_read_options_do_not_apply_to_registered_datasets() -> None:
    result = runner.invoke(app, [*EVALUATE, "--dataset", "ml-latest-small", "--order", "file"])
    assert result.exit_code == 2 and "'ml-latest-small' is a registered dataset" in result.output


def test_inspect_says_what_would_be_read(here: Path) -> None:
    lines = [[str(t) for t in line] for line in rows()]
    write(here / "log.csv", "user_id,item_id", [*lines, lines[3]])
    shown = runner.invoke(app, ["data", "inspect", "log.csv", "--duplicates", "error"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    for part in ("log from log.csv as csv", "40 users, 30 items, 240 events", "order: none: 240 events have no "
                 "timestamp", "events per user: min 6", "repeated rows: 1 (an error in evaluate/train)",
                 "problem: 1 repeated rows", "problem: log.csv, column 'timestamp'"):
        assert part in text, part
    data = json.loads(runner.invoke(app, ["data", "inspect", "log.csv", "--order", "file", "--duplicates", "drop",
                                          "--json"]).stdout)
    assert data["split"]["kind"] == "leave_one_out" and data["problems"] == [] and data["read"]["duplicates"] == 1
    assert data["split"]["sizes"] == {"train": 160, "validation": 40, "test": 40}
    bad = runner.invoke(app, ["data", "inspect", "log.csv", "--columns", "user_id=nope"])
    assert bad.exit_code == 2 and "mapped column 'nope'" in bad.output


def test_pipeline_yaml_reads_own_files_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    split = rows(split=True)
    for part in ("train", "test"):
        write(folder / f"{part}.txt", None, [line[:2] for line in split if line[2] == part], sep=" ")
    config = {"name": "own", "data": {"name": "train.txt", "format": "pairs", "test_file": "test.txt",
                                      "order": "file"},
              "sources": [{"name": "popular", "k": 10}], "merge": {"k": 10},
              "evaluation": {"ks": [5], "funnel_ks": [10]}}
    (folder / "own.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(folder / "own.yaml"), "-o", str(tmp_path / "art"), "--no-register",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["split"] == "predefined" and data["split_reason"] == "separate train/test files were given"
    assert data["split_sizes"] == {"train": 160, "validation": 0, "test": 40} and data["read"]["order"] == "file"
    config["data"]["columns"] = {"usr": "1"}
    (folder / "bad.yaml").write_text(yaml.safe_dump(config))
    bad = runner.invoke(app, ["train", str(folder / "bad.yaml"), "-o", str(tmp_path / "b"), "--no-register"])
    assert bad.exit_code == 2 and "field 'data.columns': unknown column name(s) ['usr']" in bad.output
