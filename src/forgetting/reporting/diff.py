"""Compare two models' metrics, as `dvc metrics diff` compares two revisions: one row per metric with model A's
value, model B's, Change = B - A, the 95% confidence half-width of Change and the paired t-test's p-value over the
seeds (repetitions) both share, and the verdict: real (the interval excludes 0), not resolved, or identical.

A and B are the means in metrics/<model>.json; Change, its interval and p come from metrics/repetitions/<model>.json,
repetitions paired by seed. The models are those that dvc.yaml evaluates (its `vars: models`: task_a, joint and the
strategy list). Run it from the project's root; it reads the workspace's files unless --rev is given.

The verdict is for one comparison planned before looking at the results, which needs no correction. To pick the
best of several, or to claim any of many pairs, correct for the number of comparisons: the report's all-pairs table
applies Holm's correction over all of its pairs (a pair real here can be plain there).

examples:
  forgetting diff ewc l2                 # l2 - ewc
  forgetting diff naive replay --md      # a markdown table
  forgetting diff ewc si --json          # JSON: old, new, diff, ci95, p, verdict for every metric
  forgetting diff ewc l2 --rev HEAD~1    # the metrics committed at a git revision, or a DVC experiment's
  forgetting diff joint ewc --all        # also the metrics only one of them has (task_a_forgetting, bwt)
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

from forgetting.errors import ForgettingError
from forgetting.evaluation.intervals import Difference, paired_difference, plus_minus

NAME = "diff"
HELP = "compare two models' metrics with paired confidence intervals (dvc metrics diff, between models)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's arguments: the two models and the output options."""
    parser.add_argument("old", metavar="A", help="the model compared against, e.g. ewc")
    parser.add_argument("new", metavar="B", help="the model compared with it (Change = B - A), e.g. l2")
    parser.add_argument("--rev", help="read the metrics at this git revision or DVC experiment (default: workspace)")
    parser.add_argument("--all", action="store_true", help="also list the metrics that only one model has")
    parser.add_argument("--precision", type=int, default=4, metavar="N", help="decimals shown (default: 4)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--md", action="store_true", help="print a markdown table")
    output.add_argument("--json", action="store_true", help="print JSON")


class Files:
    """The project's files: the workspace's (``rev`` None, read directly) or those of a git revision or DVC
    experiment (read through ``dvc.api.DVCFileSystem``, which resolves experiment names as ``dvc exp show`` shows
    them)."""

    def __init__(self, rev: str | None):
        if not Path("dvc.yaml").is_file():
            raise ForgettingError(f"no dvc.yaml in {Path.cwd()}: run from the project's root")
        self.rev, self.where, self.fs = rev, "" if rev is None else f" at {rev}", None
        if rev is not None:
            from dvc.api import DVCFileSystem

            self.fs = DVCFileSystem(".", rev=rev)

    def read(self, path: str) -> str:
        """The text of the file at ``path``; a ForgettingError if there is no such revision."""
        if self.fs is None:
            return Path(path).read_text()
        from dvc.exceptions import DvcException

        try:
            return self.fs.read_text(path)
        except DvcException as exc:
            problem = f"cannot read revision {self.rev!r} ({exc})"
            raise ForgettingError(f"{problem}: see `git log` or `dvc exp list`") from None

    def load(self, path: str, parse, fix: str):
        """The file at ``path`` parsed by ``parse``; a ForgettingError ending in ``fix`` if it is missing or corrupt."""
        try:
            return parse(self.read(path))
        except FileNotFoundError:
            raise ForgettingError(f"{path} is missing{self.where}: {fix}") from None
        except (ValueError, yaml.YAMLError) as exc:
            raise ForgettingError(f"{path} is corrupt{self.where} ({exc}): {fix}") from None


class Model(NamedTuple):
    """One model's metrics: its means (metrics/<name>.json) and per-repetition values with their seeds
    (metrics/repetitions/<name>.json)."""

    name: str
    means: dict
    repetitions: dict

    def at(self, key: str, seeds: list[int]) -> list[float]:
        """The repetitions' values of metric ``key`` for ``seeds``, in that order."""
        values = self.repetitions.get(key, [])
        if len(values) != len(self.repetitions["seed"]):
            path = f"metrics/repetitions/{self.name}.json"
            raise ForgettingError(f"{path} has no {key} for every seed: {rerun(self.name)}")
        by_seed = dict(zip(self.repetitions["seed"], values, strict=True))
        return [by_seed[seed] for seed in seeds]


class Row(NamedTuple):
    """One metric: A's and B's means (None where that model lacks it), the paired difference B - A over the shared
    seeds (NaN where there is none, its ci95 NaN with one seed) and its verdict (None where there is none)."""

    metric: str
    old: float | None
    new: float | None
    difference: Difference
    verdict: str | None


NONE = Difference(math.nan, math.nan, math.nan)


def rerun(name: str) -> str:
    """The fix for model ``name``'s missing or stale metrics."""
    return f"run `dvc repro evaluate@{name}`"


def model_names(files: Files) -> list[str]:
    """The models that dvc.yaml evaluates: its ``vars: models`` (the task-A model, joint and the strategy list), or,
    at a revision before the list, those its ``metrics:`` section lists as ``metrics/<name>.json``."""
    pipeline = files.load("dvc.yaml", yaml.safe_load, "restore it with `git checkout dvc.yaml`") or {}
    for entry in pipeline.get("vars") or []:
        if isinstance(entry, dict) and isinstance(entry.get("models"), dict):
            models = list(entry["models"])
            return sorted(
                models, key=lambda name: ("task_a", "joint").index(name) if name in ("task_a", "joint") else 2
            )
    paths = pipeline.get("metrics") or []
    return [match[1] for path in paths if (match := re.fullmatch(r"metrics/([^/]+)\.json", str(path)))]


def load_metrics(files: Files, name: str, names: list[str]) -> Model:
    """Model ``name``'s metrics; a ForgettingError if dvc.yaml does not list it or it has not been evaluated."""
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ForgettingError(f"unknown model {name!r}: use one of {', '.join(names)}{hint}")
    means = files.load(f"metrics/{name}.json", json.loads, rerun(name))
    repetitions = files.load(f"metrics/repetitions/{name}.json", json.loads, rerun(name))
    shapes = (
        (f"metrics/{name}.json", means, "a mapping of metric names to numbers", _number),
        (f"metrics/repetitions/{name}.json", repetitions, "a mapping of metric names to lists of numbers", _numbers),
    )
    for path, content, shape, fits in shapes:
        if not isinstance(content, dict) or not all(isinstance(k, str) and fits(v) for k, v in content.items()):
            raise ForgettingError(f"{path} is not a metrics file{files.where} ({shape}): {rerun(name)}")
    if not isinstance(repetitions.get("seed"), list) or not all(type(s) is int for s in repetitions["seed"]):
        raise ForgettingError(f"metrics/repetitions/{name}.json has no seed list{files.where}: {rerun(name)}")
    return Model(name, means, repetitions)


def _number(value) -> bool:
    """A metric's value: a number, or null (no interval)."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _numbers(values) -> bool:
    return isinstance(values, list) and all(_number(v) and v is not None for v in values)


def shared_seeds(old: Model, new: Model) -> list[int]:
    """The seeds both models have, in A's order; a note on stderr when either has others."""
    old_seeds, new_seeds = old.repetitions["seed"], new.repetitions["seed"]
    seeds = [seed for seed in old_seeds if seed in new_seeds]
    if not seeds:
        raise ForgettingError(
            f"{old.name} (seeds {old_seeds}) and {new.name} (seeds {new_seeds}) share no seed: "
            "rerun one of them with the other's `seed` and `seeds` params"
        )
    if len(seeds) < max(len(old_seeds), len(new_seeds)):
        note = f"Change, 95% CI and p over the {len(seeds)} shared seeds {seeds} (A and B: means over every seed)"
        print(f"note: {note}", file=sys.stderr)
    return seeds


def rows(old: Model, new: Model, seeds: list[int], everything: bool) -> list[Row]:
    """One row per metric both models have (with ``everything``, also those only one has), in A's order then B's."""
    keys = [key for key in {**old.means, **new.means} if not key.endswith("_ci95") and key != "seed"]
    result = []
    for key in keys:
        if key in old.means and key in new.means:
            difference = paired_difference(new.at(key, seeds), old.at(key, seeds))  # one seed: ci95 NaN
            result.append(Row(key, old.means[key], new.means[key], difference, difference.verdict))
        elif everything:
            result.append(Row(key, old.means.get(key), new.means.get(key), NONE, None))
    return result


def number(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``-`` for a missing value or NaN."""
    return "-" if value is None or math.isnan(value) else format(value, spec)


def cells(row: Row, precision: int) -> list[str]:
    """A row's table cells: metric, A, B, Change, 95% CI, p, verdict."""
    mean, ci95, p = row.difference
    small = 10.0**-precision
    return [
        row.metric,
        number(row.old, f".{precision}f"),
        number(row.new, f".{precision}f"),
        number(mean, f"+.{precision}f"),
        "-" if math.isnan(mean) else plus_minus(ci95, precision, space=""),
        f"<{small:.{precision}f}" if p < small else number(p, f".{precision}f"),
        row.verdict or "-",
    ]


def table(header: list[str], body: list[list[str]], markdown: bool) -> str:
    """Left-aligned columns as `dvc metrics diff` prints them: plain, two spaces apart, or a GitHub markdown table."""
    widths = [max(map(len, column)) for column in zip(header, *body, strict=True)]

    def line(cells: list[str], between: str) -> str:
        return between.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    if not markdown:
        return "\n".join(line(cells, "  ").rstrip() for cells in [header, *body])
    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([f"| {line(header, ' | ')} |", rule, *(f"| {line(cells, ' | ')} |" for cells in body)])


def as_json(old: Model, new: Model, seeds: list[int], result: list[Row]) -> str:
    """The comparison as JSON: the models, the shared seeds and each metric's old, new, diff, ci95, p and verdict
    (null where missing or NaN)."""

    def plain(value: float) -> float | None:
        return None if math.isnan(value) else value

    metrics = {
        row.metric: {
            "old": row.old,
            "new": row.new,
            **dict(zip(("diff", "ci95", "p"), map(plain, row.difference), strict=True)),
            "verdict": row.verdict,
        }
        for row in result
    }
    return json.dumps({"old": old.name, "new": new.name, "seeds": seeds, "metrics": metrics})


def run(args: argparse.Namespace) -> int:
    """Print the comparison of models A and B; 0."""
    if args.old == args.new:
        raise ForgettingError(f"both models are {args.old!r}: name two different ones, e.g. `forgetting diff ewc l2`")
    if not 0 <= args.precision <= 12:
        raise ForgettingError(f"--precision {args.precision}: give the decimals to show, 0 to 12 (default 4)")
    files = Files(args.rev)
    names = model_names(files)
    old, new = (load_metrics(files, name, names) for name in (args.old, args.new))
    seeds = shared_seeds(old, new)
    result = rows(old, new, seeds, args.all)
    if args.json:
        print(as_json(old, new, seeds, result))
    else:
        header = ["Metric", old.name, new.name, "Change", "95% CI", "p", "verdict"]
        print(table(header, [cells(row, args.precision) for row in result], args.md))
    return 0
