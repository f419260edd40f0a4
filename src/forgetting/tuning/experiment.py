"""Run the pipeline for a setting with its tuned values (tuning/<setting>.yaml, from ``forgetting tune``) as a DVC
experiment, so that it appears in ``dvc exp show`` beside the workspace:

    forgetting exp class-split5            # dvc exp run -n class-split5 -S scenario=class -S tasks=... -S alpha=...
    forgetting exp class-split5 --queue    # queue it (then: dvc queue start)
    forgetting exp class-split5 --dry      # only print the dvc command
    forgetting exp class-split5 --protocol hsu2018   # a published protocol's values instead (config/protocols.py)
    forgetting exp class-split5 evaluate@ewc  # only the stages that EWC's metrics need (dvc exp run's targets)

Under a published protocol (``--protocol``), the run takes the protocol's values, the paper's, and not the values
tuned for the project's own protocol; it needs no tuning file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shlex
import subprocess
from typing import Any

from forgetting.config import protocols, settings
from forgetting.errors import ForgettingError
from forgetting.tuning.project import project_root

NAME = "exp"
HELP = "run a setting with its tuned values as a DVC experiment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "setting",
        help=f"<scenario>-<sequence>: {'/'.join(settings.SCENARIOS)} x {'/'.join(settings.SEQUENCES)} (the benchmarks "
        f"run {', '.join(settings.SETTINGS)})",
    )
    parser.add_argument(
        "targets", nargs="*", help="stages to run, with the ones they need (dvc exp run's targets; default: all)"
    )
    parser.add_argument("--name", help="the experiment's name (default: the setting's)")
    parser.add_argument("--queue", action="store_true", help="queue it instead (dvc queue start runs it)")
    parser.add_argument("--dry", action="store_true", help="print the dvc command and stop")
    parser.add_argument(
        "--protocol", help=f"a published protocol's values instead of the tuned ones: {', '.join(protocols.PROTOCOLS)}"
    )


def command(
    setting: str,
    tuned: dict[str, Any] | None,
    name: str,
    queue: bool = False,
    protocol: str | None = None,
    targets: tuple[str, ...] = (),
) -> list[str]:
    """``dvc exp run`` with the setting's scenario, tasks and task inputs as ``-S`` overrides, then every value
    ``tuned`` chose, or, with ``protocol``, that published protocol's values for the setting; then ``targets``, the
    stages to run (with those they depend on; none: the whole pipeline)."""
    setting_values = settings.values(setting)
    inputs = setting_values.pop("task_inputs")
    values = {
        "scenario": setting_values["scenario"],
        "tasks": json.dumps(setting_values["tasks"]).replace(" ", ""),
        "task_inputs.kind": inputs["kind"],
        **{key: json.dumps(value) for key, value in setting_values.items() if key not in ("scenario", "tasks")},
    }
    if protocol is not None:
        chosen = protocols.protocol(protocol).params(setting_values["scenario"], len(setting_values["tasks"]))
    else:
        chosen = {key: value for entry in tuned["chosen"].values() for key, value in entry["params"].items()}
    values |= {key: json.dumps(value).replace(" ", "") for key, value in chosen.items()}
    overrides = [arg for key, value in values.items() for arg in ("-S", f"{key}={value}")]
    return ["dvc", "exp", "run", "-n", name, *(["--queue"] if queue else []), *overrides, *targets]


def check_targets(targets: list[str], root) -> None:
    """Each of ``targets`` is a stage of the project's pipeline (``dvc stage list``), else one clear error: a queued
    run would fail only later, in the queue."""
    if not targets:
        return
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=root, capture_output=True, text=True)
    stages = listed.stdout.split()
    for target in targets:
        if target not in stages:
            close = difflib.get_close_matches(target, stages, n=1)
            hint = f"did you mean {close[0]}?" if close else "`dvc stage list` lists them"
            raise ForgettingError(f"no stage {target!r} in dvc.yaml: {hint}")


def run(args: argparse.Namespace) -> int:
    root = project_root()
    settings.values(args.setting)  # an unknown setting is one clear error
    check_targets(args.targets, root)
    if args.protocol is not None:
        protocols.protocol(args.protocol)  # so is an unknown protocol
        name = args.name or f"{args.setting}-{args.protocol}"
        dvc = command(args.setting, None, name, args.queue, args.protocol, tuple(args.targets))
        print(shlex.join(dvc), flush=True)
        return 0 if args.dry else subprocess.run(dvc, cwd=root).returncode
    tuned = settings.tuned(args.setting, root / settings.TUNING)
    if tuned is None:
        raise ForgettingError(
            f"{settings.tuning_path(args.setting)} is missing: tune the setting first, forgetting tune "
            f"--scenario {args.setting.split('-', 1)[0]} --tasks {args.setting.split('-', 1)[1]}"
        )
    dvc = command(args.setting, tuned, args.name or args.setting, args.queue, targets=tuple(args.targets))
    print(shlex.join(dvc), flush=True)
    if args.dry:
        return 0
    return subprocess.run(dvc, cwd=root).returncode
