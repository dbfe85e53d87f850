"""Several train steps per dispatch (steps_per_dispatch: a lax.scan over stacked batches)
train exactly what one step per dispatch trains."""
import numpy as np

from ray_jobs.jax.worker import Trainer
from tests.jax.conftest import tiny_config


def test_steps_per_dispatch_trains_the_same_steps(tiny_features):
    """640 rows at batch 64: 10 steps an epoch, with 4 per dispatch 4 + 4 + 2 single ones;
    two epochs, the second in chunks of 3 (a chunk shorter than a dispatch)."""
    runs = {}
    for k in (1, 4):
        trainer = Trainer(tiny_config(steps_per_dispatch=k), str(tiny_features))
        results = [trainer.train_steps(100)] + [trainer.train_steps(3) for _ in range(4)]
        runs[k] = (trainer.params(), results)
    (p1, r1), (p4, r4) = runs[1], runs[4]
    assert [r["step"] for r in r4] == [r["step"] for r in r1] == [10, 13, 16, 19, 20]
    assert [r["epoch_done"] for r in r4] == [True, False, False, False, True]
    for a, b in zip(r1, r4):
        assert len(b["metrics"]["loss"]) == len(a["metrics"]["loss"])
        np.testing.assert_allclose(b["metrics"]["loss"], a["metrics"]["loss"], rtol=1e-6)
    assert p4.keys() == p1.keys()
    for name in p1:
        np.testing.assert_allclose(p4[name], p1[name], rtol=1e-5, atol=1e-7, err_msg=name)
