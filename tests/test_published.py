"""Hsu et al. (2018)'s Table 2 beside ours (forgetting.reporting.published): the verdict per cell against a hand
computation, the rows our models stand in for, and the page."""

from __future__ import annotations

import pytest

from forgetting.reporting import published


def test_a_cell_agrees_within_two_of_their_standard_deviations():
    assert published.verdict(93.46 - 4.0, 93.46, 2.01) == "agrees"  # 1.99 sd
    assert published.verdict(80.0, 93.46, 2.01) == "-13.5 (-6.7 sd)"
    assert published.verdict(91.0, 90.78, 0.05) == "+0.2 (+4.4 sd)"


def test_the_published_column_of_a_5_task_setting():
    assert published.published("class-split5")["replay"] == "90.8 ± 0.9"
    assert published.published("domain-split5")["naive"] == "55.2 ± 1.4"
    assert published.published("task-split5")["joint"] == "99.5 ± 0.2"
    assert "icarl" not in published.published("class-split5")  # not in their table
    assert "agem" not in published.published("class-split5")  # a stand-in for their GEM: on Table 2's page only
    assert published.published("domain-even-odd") == {}


def test_table2_holds_ours_theirs_and_the_verdict(tmp_path):
    summaries = {
        "task": {"naive": {"mean_accuracy": 0.9346, "mean_accuracy_ci95": 0.01}},
        "class": {"replay": {"mean_accuracy": 0.80, "mean_accuracy_ci95": 0.004}, "naive": {"mean_accuracy": 0.2}},
    }
    lines = published.table2(summaries)
    assert lines[0].startswith("| method (theirs) | ours | ours, task | Hsu et al., task | verdict, task | ours, class")
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in lines[2:]}
    assert list(rows) == list(published.HSU_TABLE2)
    task, klass = rows["naive (Adam)"][2:5], rows["naive (Adam)"][5:]
    assert task == ["93.46 ± 1.00", "93.46 ± 2.01", "agrees"]
    assert klass == ["20.00 ± n/a", "19.71 ± 0.08", "+0.3 (+3.6 sd)"]
    assert rows["rehearsal (buffer 1100)"][1].startswith("`replay` (ours class-balanced")
    assert rows["rehearsal (buffer 1100)"][5:] == ["80.00 ± 0.40", "90.78 ± 0.85", "-10.8 (-12.7 sd)"]
    assert rows["RtF"][1].startswith("`rtf` (ours fits its decoder") and rows["RtF"][2] == ""  # not run here
    assert rows["naive (SGD)"][1] == "— (every strategy here trains with Adam)" and rows["naive (SGD)"][2] == ""
    published.write_table2_page(summaries, 5, tmp_path / "hsu2018.md")
    page = (tmp_path / "hsu2018.md").read_text()
    assert (
        "under `hsu2018`" in page
        and "5 repetitions each" in page
        and "A-GEM (one reference gradient on a memory batch)" in page
    )
    assert "in the task and class scenarios under" in page  # the scenarios run, in Table 2's order
    assert published.agreeing(summaries) == {"task": (1, 1), "class": (0, 2)}  # naive: 3.6 sd; replay: -12.7 sd
    assert "Rows that agree: task, 1 of 1; class, 0 of 2 (GEM's and DGR's with our stand-ins)." in page
    first = page
    published.write_table2_page(summaries, 5, tmp_path / "hsu2018.md")
    assert (tmp_path / "hsu2018.md").read_text() == first
    published.write_table2_page({"class": summaries["class"]}, 5, tmp_path / "class.md")
    assert "in the class scenario under" in (tmp_path / "class.md").read_text()


@pytest.mark.parametrize("scenario", published.SCENARIOS)
def test_every_row_maps_to_one_of_our_models_or_says_why_not(scenario):
    from forgetting.evaluation.results import models

    for row, (model, note) in published.OURS.items():
        assert model in (*models(), None), row
        assert model is not None or note, row
