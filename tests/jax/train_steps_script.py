"""Subprocess helper for tests: N train steps with a given config, params to an npz.

python -m tests.jax.train_steps_script CONFIG_JSON FEATURES OUT_NPZ STEPS
Prints one JSON line: device count, and the partition spec of every sharded parameter.
"""
import json
import sys

import numpy as np


def main(config_json: str, features: str, out: str, steps: int) -> None:
    from ray_jobs.jax.worker import Trainer
    trainer = Trainer(json.loads(config_json), features)
    done = 0
    while done < steps:
        done += len(trainer.train_steps(steps - done)["metrics"]["loss"])
    np.savez(out, **trainer.params())
    sharded = {"/".join(map(str, k)): str(v.sharding.spec) for k, v in
               _with_paths(trainer.state.params) if not v.sharding.is_fully_replicated}
    print(json.dumps({"num_devices": trainer.mesh.size, "sharded": sharded,
                      "eval": trainer.evaluate()}))


def _with_paths(tree):
    import jax
    from ray_jobs.jax.checkpoint import path_keys
    return [(path_keys(p), v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
