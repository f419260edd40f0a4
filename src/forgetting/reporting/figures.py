"""The report's figures (``forgetting.reporting.report``), drawn with matplotlib's Agg canvas (no display, no pyplot
state) and saved as byte-stable PNGs: a fixed size and dpi, matplotlib's default style, no software tag or date.

Every strategy has its own colour in every figure (``colour``: tab10, then tab20's lighter shades, greys left out, by
its place in the strategy list); joint is black, the task-A model grey. A
strategy whose every repetition equals an earlier one's (online EWC is EWC for two tasks) is drawn dashed and named
beside it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from forgetting.strategies import listed

if TYPE_CHECKING:
    from forgetting.evaluation.results import Results

DPI = 100
# tab10 without its grey, then tab20's lighter shades without theirs: 18 colours before any repeats
PALETTE = [
    *(c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7),
    *(c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i % 2 and i != 15),
]
FIXED = {"joint": "black", "task_a": "0.5"}


def colour(name: str) -> Any:
    """The colour of model ``name``: joint black, the task-A model grey, a strategy by its place in the list."""
    return FIXED[name] if name in FIXED else PALETTE[listed().index(name) % len(PALETTE)]


PANELS_PER_ROW = 3


@dataclass(frozen=True)
class Plot:
    """One figure of the report: its file name, its title, the sentence that says how to read it, the function that
    draws it (``draw(results, path, memory)``, with ``memory`` each strategy's memory cost as text), and the fewest
    tasks it is drawn for, with the sentence that stands in its place below that."""

    file: str
    title: str
    how_to_read: str
    draw: Callable[[Results, Path, dict[str, str]], None]
    min_tasks: int = 2
    skipped: str = ""


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, in matplotlib's default style."""
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI, metadata={"Software": None})


def letter(task: str) -> str:
    """A task's letter: ``task_c`` -> ``C``."""
    return task[-1].upper()


def _label(name: str, same: dict[str, str]) -> str:
    return f"{name} (= {same[name]})" if name in same else name


def mean_accuracy(results: Results, path: Path, memory: dict[str, str]) -> None:
    """Each strategy's mean accuracy with its 95% CI, best at the top, its memory cost at the right; joint and naive
    (where the strategy list has it) as reference lines with their CI bands."""
    names = results.strategies
    figure = new_figure(7.5, 0.42 * len(names) + 1.5)
    ax = figure.subplots()
    rows = np.arange(len(names))[::-1]
    for row, name in zip(rows, names, strict=True):
        s = results.summary[name]
        ax.errorbar(s["mean_accuracy"], row, xerr=_bar(s["mean_accuracy_ci95"]), fmt="o", color=colour(name), capsize=3)
        ax.text(1.03, row, memory[name], transform=ax.get_yaxis_transform(), va="center", fontsize=9)
    ax.text(1.03, len(names) - 0.3, "memory", transform=ax.get_yaxis_transform(), fontsize=9, weight="bold")
    lines = (("joint", "--", "joint (upper bound)"), ("naive", ":", "naive fine-tuning"))
    for name, style, label in (line for line in lines if line[0] in results.summary):  # naive: if it is listed
        mean, half = results.summary[name]["mean_accuracy"], results.summary[name]["mean_accuracy_ci95"]
        ax.axvline(mean, color=colour(name), linestyle=style, label=f"{label}: {mean:.3f}")
        if _bar(half) is not None:
            ax.axvspan(mean - half, mean + half, color=colour(name), alpha=0.1, linewidth=0)
    ax.set_yticks(rows, [_label(name, results.same_as()) for name in names])
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel("mean final test accuracy over the tasks (mean and 95% CI over the repetitions)")
    ax.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside upper center", ncols=2, fontsize=9)
    save_figure(figure, path)


def forgetting_curves(results: Results, path: Path, memory: dict[str, str]) -> None:
    """One panel per task: its test accuracy along task A's training, then each strategy's (mean and 95% CI band),
    the task boundaries marked, joint's final accuracy dotted. The legend takes the first free panel, else the
    right side."""
    tasks, same = results.tasks, results.same_as()
    columns = min(len(tasks), PANELS_PER_ROW)
    rows = -(-len(tasks) // columns)
    free = rows * columns - len(tasks)
    figure = new_figure(3.7 * columns + (0 if free else 1.9), 3.0 * rows + 0.3)
    axes = list(figure.subplots(rows, columns, sharey=True, squeeze=False).flat)
    ends = _task_ends(results)
    for ax, task, digits in zip(axes, tasks, results.params["tasks"], strict=False):
        _band(ax, *results.curve("task_a", task), colour("task_a"), "task A's training")
        for name in results.strategies:
            epochs, *values = results.curve(name, task)
            _band(ax, epochs + ends[0], *values, colour(name), _label(name, same), "--" if name in same else "-")
        final = results.summary["joint"][f"{task}_accuracy"]
        ax.axhline(final, color=colour("joint"), linestyle=":", linewidth=1, label="joint, final")
        _mark_tasks(ax, ends, tasks)
        ax.set_title(f"task {letter(task)} ({' '.join(map(str, digits))})", pad=14, fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[len(tasks) :]:  # the rest of the last row
        ax.axis("off")
    if free:
        axes[len(tasks)].legend(handles, labels, loc="center", fontsize=9)
    else:
        figure.legend(handles, labels, loc="outside right center", fontsize=9)
    figure.supxlabel("epoch (task A's, then each later task's in turn)", fontsize=10)
    figure.supylabel("test accuracy", fontsize=10)
    save_figure(figure, path)


def _bar(half: float | None) -> float | None:
    """An error bar's half-width, None where there is no interval (one repetition)."""
    return None if half is None or math.isnan(half) else half


def _band(ax: Axes, epochs, mean, low, high, colour, label: str, style: str = "-") -> None:
    ax.plot(epochs, mean, color=colour, linestyle=style, linewidth=1.4, label=label)
    ax.fill_between(epochs, low, high, color=colour, alpha=0.12, linewidth=0)


def _task_ends(results: Results) -> list[int]:
    """The epoch (of the whole sequence) at which each task's training ends: task A's from its own log, the later
    tasks' from the strategies' logs (which count on from 0 = the end of task A)."""
    end_a = int(max(record["epoch"] for record in results.per_epoch["task_a"]))
    log = results.per_epoch[listed()[0]]
    later = [max(r["epoch"] for r in log if r["trained"] == task) for task in results.tasks[1:]]
    return [end_a, *(end_a + int(end) for end in later)]


def _mark_tasks(ax: Axes, ends: list[int], tasks: list[str]) -> None:
    """A vertical line at each boundary between tasks, and each task's letter above its stretch."""
    for end in ends[:-1]:
        ax.axvline(end, color="0.3", linewidth=0.8)
    for start, end, task in zip([0, *ends[:-1]], ends, tasks, strict=True):
        ax.text((start + end) / 2, 1.0, letter(task), transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xlim(0, ends[-1])
    ax.set_xticks([0, *ends], [0, *ends], fontsize=8)


def accuracy_matrices(results: Results, path: Path, memory: dict[str, str]) -> None:
    """One small heatmap per strategy: test accuracy (in %) on each task (column) after training on each (row)."""
    names, letters = results.strategies, [letter(task) for task in results.tasks]
    columns = min(len(names), 4)
    side = 0.9 + 0.27 * len(letters)
    figure = new_figure(columns * side + 1.4, -(-len(names) // columns) * (side + 0.3) + 0.5)
    axes = figure.subplots(-(-len(names) // columns), columns, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        grid = results.grid(name)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for (row, column), value in np.ndenumerate(grid):
            colour = "black" if value > 0.6 else "white"
            ax.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(letters)), letters, fontsize=8)
        ax.set_yticks(range(len(letters)), letters, fontsize=8)
        ax.set_title(_label(name, results.same_as()), fontsize=10)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    figure.supxlabel("tested on task", fontsize=10)
    figure.supylabel("after training on task", fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.7, label="test accuracy (cells: %)")
    save_figure(figure, path)


def stability_plasticity(results: Results, path: Path, memory: dict[str, str]) -> None:
    """One point per strategy (and joint): final accuracy on the newest task against the mean final accuracy on the
    earlier ones, each with its 95% CI; a strategy that equals an earlier one is named beside it."""
    names, same = ["joint", *results.strategies], results.same_as()
    figure = new_figure(7.0, 5.4)
    ax = figure.subplots()
    points = []
    for name in (name for name in names if name not in same):
        x, dx, y, dy = results.stability(name)
        marker = {"fmt": "*", "markersize": 12} if name == "joint" else {"fmt": "o"}
        ax.errorbar(x, y, xerr=_bar(dx), yerr=_bar(dy), color=colour(name), capsize=2, **marker)
        twins = [other for other in names if same.get(other) == name]
        points.append((x, _bar(dx) or 0.0, y, _bar(dy) or 0.0, " = ".join([name, *twins])))
    low, high = ax.get_xlim()
    ax.set_xlim(low - 0.08 * (high - low), high + 0.12 * (high - low))  # room for labels beside the outer points
    tasks = results.tasks
    earlier = ", ".join(letter(task) for task in tasks[:-1])
    ax.set_xlabel(f"plasticity: final test accuracy on the newest task ({letter(tasks[-1])})")
    ax.set_ylabel(f"stability: mean final test accuracy on the earlier tasks ({earlier})")
    ax.grid(alpha=0.3)
    _place_labels(ax, points)
    save_figure(figure, path)


def _place_labels(ax: Axes, points: list[tuple[float, float, float, float, str]]) -> None:
    """Each point's label (``points``: x, its CI half-width, y, its half-width, the label) beside it, in the first
    place inside the axes that overlaps no confidence bar and no label placed before it: right of the point's bar,
    left of it, or moved up or down step by step (then with a thin line back to the point)."""
    figure = ax.figure
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    to_points = 72 / figure.dpi
    taken = [Bbox(ax.transData.transform([(x - dx, y - dy), (x + dx, y + dy)])).padded(2) for x, dx, y, dy, _ in points]
    inside = ax.get_window_extent(renderer)
    for x, dx, y, _, text in sorted(points, key=lambda point: -point[2]):
        note = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", va="center", fontsize=9)
        bar = (ax.transData.transform((x + dx, y))[0] - ax.transData.transform((x, y))[0]) * to_points + 4
        for offset, side in _label_places(bar):
            note.xyann = offset
            note.set_horizontalalignment(side)
            box = note.get_window_extent(renderer)
            within = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            if within and not any(box.overlaps(other) for other in taken):
                break
        taken.append(box)
        if offset[1]:  # moved off its point's row: a line back to it
            note.remove()
            line = {"arrowstyle": "-", "color": "0.6", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 4}
            ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", va="center", ha=side, fontsize=9,
                        arrowprops=line)  # fmt: skip


def _label_places(bar: float, step: float = 6.0, steps: int = 12) -> list[tuple[tuple[float, float], str]]:
    """The offsets (points) and alignments a label tries, in order: right of a bar reaching ``bar`` points either
    side of its point, left of it, then further up or down by ``step`` points at a time."""
    places = []
    for k in range(steps + 1):
        for rise in dict.fromkeys((0.0, -k * step, k * step)):
            places += [((bar, rise), "left"), ((-bar, rise), "right")]
    return places


FIGURES = (
    Plot(
        "mean_accuracy.png",
        "Mean accuracy per strategy",
        "further right is better; a strategy whose interval overlaps the dashed joint line matches training on "
        "every task at once, and the memory column says what it keeps to get there.",
        mean_accuracy,
    ),
    Plot(
        "forgetting_curves.png",
        "Forgetting as it happens",
        "each panel follows one task's test accuracy through the whole sequence: it rises while that task trains "
        "(between its boundary lines), and how far it falls after that is how much each strategy forgets it.",
        forgetting_curves,
    ),
    Plot(
        "accuracy_matrices.png",
        "Accuracy matrices",
        "row i is the test accuracy on every task after training on task i: the diagonal is each task just "
        "learnt, the cells below it what is left of it later (forgetting), those above it accuracy before training.",
        accuracy_matrices,
        min_tasks=3,
        skipped="Not drawn for two tasks: each matrix would be task A's model (the same for every strategy) above "
        "the final accuracies of the table.",
    ),
    Plot(
        "stability_plasticity.png",
        "Stability vs plasticity",
        "up is keeping the earlier tasks, right is learning the newest one; the best strategies sit near joint's "
        "star in the upper right, and a strategy left of another traded plasticity for stability.",
        stability_plasticity,
    ),
)
