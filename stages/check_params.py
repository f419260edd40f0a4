"""Stage check_params: the whole of params.yaml against its typed schema (forgetting.config.params for the common
sections, each listed strategy's module for its own keys). It depends on the whole file and nothing depends on it, so a
typo in any key fails `dvc repro` at once, even a key no stage reads, while every other stage still reruns only for the
keys it declares. Every strategy whose setting cannot run (a buffer the data cannot fill) is named at once, each
with its fix, so that a small run (`-S data.train_per_digit=50`) needs one try, not one per strategy."""

from forgetting.config import params
from forgetting.errors import ForgettingError
from forgetting.stage import import_tensorflow, run_stage


def main() -> None:
    content = params.read()
    params.validate(content)  # the common sections first: no TensorFlow needed
    import_tensorflow()  # the strategies' modules import it
    from forgetting.strategies import listed, strategy_class, validate_params

    validate_params(content, strategies=[])  # every strategy's keys against its module's types
    problems = []
    for name in listed():  # then each listed strategy's setting, every problem collected
        try:
            strategy_class(name).check_setting(content)
        except ForgettingError as exc:
            problems.append(str(exc))
    problems = list(dict.fromkeys(problems))  # once each: replay_equal_steps runs replay's buffer
    if len(problems) > 1:
        numbered = " ".join(f"({i}) {problem}" for i, problem in enumerate(problems, 1))
        raise ForgettingError(f"{params.PARAMS_FILE}: {len(problems)} problems with this setting: {numbered}")
    if problems:
        raise ForgettingError(f"{params.PARAMS_FILE}: {problems[0]}")
    print(f"{params.PARAMS_FILE}: every key known, present and valid")


if __name__ == "__main__":
    run_stage(main)
