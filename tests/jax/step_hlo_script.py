"""Subprocess helper for tests: the all-reduces in the compiled train step's HLO.

python -m tests.jax.step_hlo_script CONFIG_JSON FEATURES
Prints one JSON line: the parameter count, the metric names, and for every all-reduce
instruction of the compiled step the shapes of the buffers it reduces.
"""
import json
import re
import sys

ALL_REDUCE = re.compile(r"= (.*?) all-reduce(?:-start)?\(")


def main(config_json: str, features: str) -> None:
    import jax

    from ray_jobs.jax import data
    from ray_jobs.jax.worker import Trainer
    trainer = Trainer(json.loads(config_json), features)
    host = jax.tree.map(lambda a: a[0], trainer.train.epoch(0))
    batch = data.to_global(host, trainer.train_sh, trainer.config.batch_size)
    hlo = trainer.train_step.lower(trainer.state, batch).compile().as_text()
    reduces = [re.findall(r"[a-z]+\d*\[[\d,]*\]", m.group(1)) for m in ALL_REDUCE.finditer(hlo)]
    metrics = trainer.train_steps(1)["metrics"]
    print(json.dumps({"num_devices": trainer.mesh.size, "all_reduces": reduces,
                      "num_params": sum(x.size for x in jax.tree.leaves(trainer.state.params)),
                      "metrics": sorted(metrics)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
