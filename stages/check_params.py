"""Stage check_params: the whole of params.yaml against its typed schema (forgetting.params). It depends on the
whole file and nothing depends on it, so a typo in any key fails `dvc repro` at once, even a key no stage reads,
while every other stage still reruns only for the keys it declares."""

from forgetting import params
from forgetting.cli import run_stage


def main() -> None:
    params.validate(params.read())
    print(f"{params.PARAMS_FILE}: every key known, present and valid")


if __name__ == "__main__":
    run_stage(main)
