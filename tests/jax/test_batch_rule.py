"""The default batch on small tables: capped so an epoch keeps min_steps_per_epoch steps,
the learning rate scaled with it (config.fit_batch), and what a run records of it."""
import json

import pytest

from ray_jobs.jax import driver
from ray_jobs.jax.config import JaxConfig, fit_batch, from_dict
from tests.jax.conftest import tiny_config


def test_the_defaults_are_batch_2048_at_learning_rate_4e_3():
    cfg = JaxConfig()
    assert (cfg.batch_size, cfg.learning_rate, cfg.min_steps_per_epoch) == (2048, 4e-3, 8)


@pytest.mark.parametrize("changes, smallest, batch, lr", [
    # the movies table's 4,180 train rows (tests/e2e/test_movies_regression.py): 522 rows a
    # step (8 steps), lr 4e-3 * 522 / 2048, what the former defaults (512, 1e-3) gave it
    ({}, 4180, 522, 4e-3 * 522 / 2048),
    # flights-sized: 16,384 rows and more keep the default
    ({}, 16384, 2048, 4e-3),
    ({}, 262_000, 2048, 4e-3),
    # 2 data shards x 2 workers of 1 device: a multiple of lcm(2, 2); 700 // 8 * 2 = 174
    ({"num_workers": 2, "data_shards": 2}, 700, 174, 4e-3 * 174 / 2048),
    # 4 devices, 2 shards: a multiple of 4; 1000 // 8 * 2 = 250 -> 248
    ({"devices_per_worker": 4, "data_shards": 2}, 1000, 248, 4e-3 * 248 / 2048),
    # fewer rows than steps: the smallest batch the layout allows
    ({"data_shards": 3, "batch_size": 3072, "eval_batch_size": 3072}, 5, 3, 4e-3 * 3 / 3072),
    # an explicit batch and rate are capped and scaled alike
    ({"batch_size": 768, "learning_rate": 0.01}, 320, 40, 0.01 * 40 / 768),
    # an explicit batch that leaves enough steps: unchanged
    ({"batch_size": 64, "learning_rate": 0.01}, 640, 64, 0.01),
    # the rule off: unchanged (the driver then refuses a batch larger than the table)
    ({"min_steps_per_epoch": 0}, 700, 2048, 4e-3),
])
def test_fit_batch(changes, smallest, batch, lr):
    cfg = from_dict(changes)
    fitted = fit_batch(cfg, smallest)
    assert fitted.batch_size == batch
    assert fitted.learning_rate == pytest.approx(lr, rel=1e-12)
    assert fit_batch(fitted, smallest) == fitted  # applying it twice changes nothing
    assert fitted.replace(batch_size=cfg.batch_size, learning_rate=cfg.learning_rate) == cfg


def test_devices_known_only_in_the_worker_round_the_batch_to_them():
    cfg = from_dict({"platform": "gpu"})  # device count unknown before the workers
    assert fit_batch(cfg, 1000).batch_size == 1000 // 8
    assert fit_batch(cfg, 1000, devices=4).batch_size == 124


def test_a_small_table_trains_at_the_capped_batch_and_records_it(tiny_features, tmp_path):
    """640 train rows in 2 shards of 320: batch 768 is capped to 80 (8 steps an epoch),
    the learning rate scaled to 0.01 * 80 / 768; the model's config says so."""
    out = tmp_path / "run"
    summary = driver.run(tiny_config(batch_size=768, data_shards=2, epochs=2),
                         tiny_features, out)
    assert [e["step"] for e in summary["history"]] == [8, 16]
    recorded = json.loads((out / "artifact.json").read_text())["config"]
    assert recorded["batch_size"] == 80
    assert recorded["learning_rate"] == pytest.approx(0.01 * 80 / 768, rel=1e-12)
    assert recorded["min_steps_per_epoch"] == 8
