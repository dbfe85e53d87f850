"""Test-only plug-in wrappers around ray_jobs.xgboost.tuning (fault and delay injection)."""
from __future__ import annotations

import os
import sys
import time
import types

from xgboost.callback import TrainingCallback

from ray_jobs.xgboost import tuning


class SleepCallback(TrainingCallback):
    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    def after_iteration(self, model, epoch, evals_log):
        time.sleep(self.delay_s)
        return False


def plugin(make_trainable) -> types.SimpleNamespace:
    """The xgboost plug-in with another make_trainable."""
    names = ("SEARCH_SPACE_FILE", "METRIC", "MODE", "TIME_ATTR", "REUSE_ACTORS",
             "trial_resources", "max_concurrent_trials", "export_best", "max_iterations")
    return types.SimpleNamespace(make_trainable=make_trainable,
                                 **{n: getattr(tuning, n) for n in names})


def failing_once_plugin(marker: str) -> types.SimpleNamespace:
    """The first trial attempt that gets to run fails (one failure in the experiment)."""
    def make_trainable(features_dir, base_config):
        inner = tuning.make_trainable(features_dir, base_config)

        def flaky_trial(config):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return inner(config)
            raise RuntimeError("injected trial failure")
        flaky_trial.__name__ = inner.__name__
        return flaky_trial
    return plugin(make_trainable)


def slow_plugin(delay_s: float) -> types.SimpleNamespace:
    """Every boosting round sleeps ``delay_s`` in the training workers."""
    def make_trainable(features_dir, base_config):
        inner = tuning.make_trainable(features_dir, base_config)

        def slow_trial(config):
            from ray_jobs.xgboost import driver
            from tests.tune.helpers import SleepCallback
            original = driver.train_spec

            def train_spec(*args, callbacks=(), **kwargs):
                return original(*args, callbacks=[*callbacks, SleepCallback(delay_s)], **kwargs)
            # In this trial's process only (the plug-in does not reuse trial processes).
            driver.train_spec = train_spec
            return inner(config)
        slow_trial.__name__ = inner.__name__  # Tuner.restore matches trainables by name
        return slow_trial
    return plugin(make_trainable)


def main_with_slow_plugin(argv: list[str]) -> None:
    """``python -m ray_jobs.tune`` with the slow xgboost plug-in (driver to be killed)."""
    import logging

    from ray_jobs.tune import __main__ as cli
    from ray_jobs.tune import driver
    logging.basicConfig(level=logging.INFO)
    driver.load_plugin = lambda job: slow_plugin(0.15)
    cli.run(argv)


if __name__ == "__main__":
    main_with_slow_plugin(sys.argv[1:])
