"""Stage check_params: the whole of params.yaml against its typed schema (forgetting.config.params for the common
sections, each listed strategy's module for its own keys). It depends on the whole file and nothing depends on it, so a
typo in any key fails `dvc repro` at once, even a key no stage reads, while every other stage still reruns only for the
keys it declares."""

from forgetting.config import params
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    content = params.read()
    params.validate(content)  # the common sections first: no TensorFlow needed
    import_tensorflow()  # the strategies' modules import it
    from forgetting.strategies import validate_params

    validate_params(content)
    print(f"{params.PARAMS_FILE}: every key known, present and valid")


if __name__ == "__main__":
    run_stage(main)
