"""The memory-budget page: the axis the rehearsal methods compete on. For every strategy that stores training
examples, its mean final test accuracy (mean and 95% CI over the repetitions) at each number of stored examples,
every other hyperparameter as the setting's; the strategies that store none, with what they keep instead (a
generator's or a network's weights, importances), and joint as reference lines. ``bench/memory_budget.py`` runs the
pipeline at each budget and calls ``write_budget_page``; the same metrics give the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config.params import with_values
from forgetting.files import atomic_output
from forgetting.reporting import markdown
from forgetting.reporting.figures import colour, new_figure, save_figure
from forgetting.reporting.report import held, mean_ci, memory_cost
from forgetting.strategies import listed, strategy_class

PAGE, FIGURE = "memory_budget.md", "memory_budget.png"


def buffer_key(name: str) -> str | None:
    """The params key that sets how many training examples strategy ``name`` stores (its ``<section>.buffer_size``
    hyperparameter, ``Memory.examples``), or None for a strategy that stores none."""
    return next((key for key in strategy_class(name).hyperparameters if key.endswith(".buffer_size")), None)


def storing() -> list[str]:
    """The strategies of dvc.yaml's list that store examples, in its order."""
    return [name for name in listed() if buffer_key(name)]


def with_budget(params: dict[str, Any], budget: int) -> dict[str, Any]:
    """A copy of ``params`` in which every strategy that stores examples stores ``budget`` of them."""
    return with_values(params, {buffer_key(name): budget for name in storing()})


def memory_text(params: dict[str, Any], name: str) -> str:
    """What strategy ``name`` keeps to train on the last task, and its size: the report's memory column."""
    return held(memory_cost(params, name))


def write_budget_page(
    setting: str,
    by_budget: dict[int, dict[str, dict[str, float]]],
    reference: dict[str, dict[str, float]],
    memory: dict[str, str],
    out: Path,
) -> None:
    """``out``/memory_budget.md and ``out``/memory_budget.png, each written whole or not at all; the rest of ``out``
    (the runs bench/memory_budget.py keeps there) is left as it is.

    ``by_budget[budget][name]``: the metrics summary (``metrics/<name>.json``) of each storing strategy run with
    ``budget`` stored examples; ``reference[name]``: those of joint and the strategies that store none, with
    ``memory[name]`` what each keeps."""
    budgets = sorted(by_budget)
    names = [name for name in storing() if all(name in by_budget[b] for b in budgets)]
    with atomic_output(out / FIGURE) as figure:
        _draw(budgets, names, by_budget, reference, memory, figure)
    with atomic_output(out / PAGE) as page:
        lines = [
            f"# Accuracy against memory in `{setting}`",
            "",
            "Mean final test accuracy over the setting's tasks (mean ± 95% CI half-width over the repetitions) of each "
            "strategy that stores training examples, at each number of stored examples (every repetition its own "
            "buffer); every other hyperparameter as the setting's (tuning/, chosen at params.yaml's buffer). Compare "
            "two strategies at one budget with `forgetting diff` (paired over the shared seeds).",
            "",
            *markdown.table(
                ["strategy", *(f"{b} examples" for b in budgets)],
                [[f"`{n}`", *(mean_ci(by_budget[b][n], "mean_accuracy") for b in budgets)] for n in names],
            ),
            "",
            "The reference lines: joint (every task's data at once) and the strategies that store no example, with "
            "what they keep instead:",
            "",
            *markdown.table(
                ["model", "mean accuracy", "memory"],
                [[f"`{n}`", mean_ci(s, "mean_accuracy"), memory.get(n, "")] for n, s in reference.items()],
                text=1,
            ),
            "",
            f"![Accuracy against stored examples]({FIGURE})",
            "",
            "Regenerate this page with `python bench/memory_budget.py`; do not edit it.",
        ]
        markdown.write(page, lines)


def _draw(
    budgets: list[int],
    names: list[str],
    by_budget: dict[int, dict[str, dict[str, float]]],
    reference: dict[str, dict[str, float]],
    memory: dict[str, str],
    path: Path,
) -> None:
    """Each storing strategy's mean accuracy and 95% CI against its stored examples (log axis); a horizontal line
    per reference model, labelled with what it keeps."""
    figure = new_figure(8.0, 5.5)
    ax = figure.subplots()
    for name in names:
        means = np.array([by_budget[b][name]["mean_accuracy"] for b in budgets])
        halves = np.array([by_budget[b][name]["mean_accuracy_ci95"] for b in budgets])
        ax.errorbar(budgets, means, yerr=halves, marker="o", capsize=3, color=colour(name), label=name)
    for name, summary in reference.items():
        label = f"{name}: {memory[name]}" if memory.get(name) else name
        ax.axhline(summary["mean_accuracy"], color=colour(name), linestyle="--", linewidth=1, label=label)
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("stored training examples (per repetition)")
    ax.set_ylabel("mean final test accuracy (mean and 95% CI)")
    ax.grid(alpha=0.3)
    figure.legend(loc="outside right center", fontsize=8)
    save_figure(figure, path)
