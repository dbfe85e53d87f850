"""The data-parallel train step reduces its gradients in ONE all-reduce of one buffer.

That is the multi-process performance mechanism: over gloo every reduced buffer is a
round trip between processes, and the plain jit step reduces one buffer per parameter
leaf. Checked on the compiled HLO of the step with 2 fake CPU devices (a fresh process:
the device count must be set before JAX's first use).
"""
import json
import os
import subprocess
import sys

from tests.jax.conftest import REPO_ROOT, tiny_config


def compiled_step(config, features) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.jax.step_hlo_script", json.dumps(config.to_dict()),
         str(features)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_data_parallel_step_has_one_all_reduce_of_one_buffer(tiny_features):
    info = compiled_step(tiny_config(devices_per_worker=2), tiny_features)
    assert info["num_devices"] == 2
    # gradients of every parameter + the loss and its parts, raveled into one vector
    # (grad_norm is computed after the reduction, from the reduced gradients)
    reduced = info["num_params"] + len(info["metrics"]) - 1
    assert info["all_reduces"] == [[f"f32[{reduced}]"]]
