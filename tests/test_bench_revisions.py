"""bench/revisions.py's per-stage timing: the stage lines it reads from `dvc repro`, each stage's seconds, and the
table's sums."""

import sys
from pathlib import Path

import pytest

from forgetting.errors import ForgettingError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
try:
    from project_copy import STAGE_LINE
    from revisions import full_run, mean_stages, stage_seconds, stage_table
finally:
    sys.path.pop(0)


def test_stage_line_names_the_stage_dvc_starts():
    assert STAGE_LINE.match("Running stage 'finetune@ewc':")["name"] == "finetune@ewc"
    assert STAGE_LINE.match("Stage 'prepare' didn't change, skipping") is None
    assert STAGE_LINE.match("> PYTHONPATH=src python stages/evaluate.py ewc") is None


def test_each_stage_lasts_until_the_next_one_starts_and_the_last_until_the_end():
    seconds = stage_seconds([("prepare", 10.0), ("train_a", 12.5), ("report", 20.0)], end=21.25)
    assert seconds == {"prepare": 2.5, "train_a": 7.5, "report": 1.25}
    assert sum(seconds.values()) == pytest.approx(21.25 - 10.0)


def test_the_table_sums_the_shared_stages_and_those_only_head_has():
    base = {"prepare": 2.0, "finetune@naive": 20.0, "evaluate@naive": 8.0}
    head = {"prepare": 3.0, "finetune@naive": 22.0, "finetune@agem": 55.0, "evaluate@agem": 7.0}
    lines = stage_table(base, head, base_total=50.0)
    assert lines[2:7] == [
        "| prepare | 2.0 | 3.0 |",
        "| finetune@naive | 20.0 | 22.0 |",
        "| finetune@agem |  | 55.0 |",
        "| evaluate@agem |  | 7.0 |",
        "| evaluate@naive | 8.0 |  |",
    ]
    assert lines[-2] == "| the stages both have (2) | 22.0 | 25.0 |"
    assert lines[-1] == "| the stages only HEAD has (2) | | 62.0 = 1.240 x base's run |"


def test_stage_means_over_rounds():
    assert mean_stages([{"a": 1.0, "b": 4.0}, {"a": 3.0, "b": 6.0}]) == {"a": 2.0, "b": 5.0}


def test_a_failed_run_raises_dvcs_error_line(tmp_path):
    """A folder with no DVC project: `dvc repro` fails, and the run names DVC's error line (the tuner's rule,
    ``forgetting.tuning.project.failure``), not a traceback of its output."""
    with pytest.raises(ForgettingError, match=r"^ERROR: you are not inside of a DVC repository"):
        full_run(tmp_path)
