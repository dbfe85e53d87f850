"""What a CLI run leaves in ``--output`` (a local path or ``gs://`` URI), committed as a
``jax_model`` artifact::

    config.json            the resolved config
    checkpoints/ckpt-<step>.npz   full train state + data position (resume from the newest)
    model/                 the best epoch (by eval loss) as a portable function, see
                           ``exporting``: predict.jaxexport, params.npz, model.json
    metrics.json           eval metrics of the best and last epoch, per-epoch history
    curves.png             train loss per step window, eval loss (and AUC) per epoch
    tensorboard/           the same curves as TensorBoard events (for a ``gs://`` output
                           written locally and copied there at the end of the run)
    artifact.json          the commit marker: lineage to the features, config, the best
                           epoch's eval metrics, timings, and the ``jax_model`` section.
                           Checkpoints, TensorBoard events and metrics.json (they hold
                           wall-clock times) are outside the digest.
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
from typing import Any

from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, Manifest, jax_model, write_json
from mlbatch.artifacts.features import FeatureSet
from ray_jobs.jax import checkpoint, exporting
from ray_jobs.jax.config import JaxConfig

log = logging.getLogger(__name__)

TYPE = jax_model.TYPE
MODEL_DIR = jax_model.MODEL_DIR
DIGEST_EXCLUDES = ("checkpoints/*", "tensorboard/*", "metrics.json")


def export_model(blob: bytes, out_dir: str) -> str:
    """Writes the model directory (``exporting``) from checkpoint bytes; returns its URI."""
    arrays, meta = checkpoint.decode(blob)
    params = {k: v for k, v in arrays.items() if k.startswith(exporting.PREFIX)}
    desc = {**meta["model"], "step": meta["step"], "epoch": meta["epoch"],
            "config": meta["config"]}
    hlo = exporting.export_predict(params, desc)
    desc["predict"] = {"file": exporting.PREDICT_FILE, "platforms": list(exporting.PLATFORMS),
                       "params_file": exporting.PARAMS_FILE, "params": sorted(params),
                       "inputs": {"numeric": "f32[b, n_numeric]",
                                  "ids": "i32[b, n_categorical]"},
                       "output": f"f32[b, {len(desc['classes'])}]" if desc.get("classes")
                       else "f32[b]"}
    out = storage.locate(out_dir).uri
    checkpoint.write_atomic(storage.join(out, exporting.PARAMS_FILE),
                            checkpoint.encode(params, desc))
    checkpoint.write_atomic(storage.join(out, exporting.PREDICT_FILE), hlo)
    checkpoint.write_atomic(storage.join(out, exporting.DESCRIPTION_FILE),
                            json.dumps(desc, indent=2).encode())
    return out


def commit_model(writer: ArtifactWriter, fs: FeatureSet, **facts: Any) -> Manifest:
    """Commits ``writer.root`` (holding ``model/``) as a ``jax_model`` artifact."""
    desc_uri = storage.join(writer.root, MODEL_DIR, exporting.DESCRIPTION_FILE)
    if not storage.exists(desc_uri):
        raise checkpoint.CheckpointError(f"{writer.root}: no epoch produced a model "
                                         f"(no finite eval loss); nothing to commit")
    desc = json.loads(storage.read_text(desc_uri))
    return writer.commit(body=jax_model.model_section(desc, fs.label_transform, **facts),
                         digest_excludes=DIGEST_EXCLUDES)


class RunOutputs:
    """The loop's sink for a CLI run: checkpoints, best model, metrics, curves."""

    def __init__(self, root: str, config: JaxConfig):
        self.root, self.config = storage.locate(root).uri, config
        self.checkpoints = checkpoint.CheckpointDir(self.at("checkpoints"),
                                                    config.keep_checkpoints)
        self._tb = None
        self._tb_local: tempfile.TemporaryDirectory | None = None

    def at(self, relpath: str) -> str:
        return storage.join(self.root, relpath)

    def latest_checkpoint(self) -> bytes | None:
        return self.checkpoints.latest()

    # --- sink ----------------------------------------------------------------------------
    def on_start(self, step: int) -> None:
        from tensorboardX import SummaryWriter
        write_json(self.at("config.json"), self.config.to_dict())
        if self._tb is not None:  # a restarted worker group: the same run goes on
            self._tb.close()
        tb_dir = self.at("tensorboard")
        if storage.is_remote(self.root):  # event files are appended to: write them locally
            if self._tb_local is None:
                self._tb_local = tempfile.TemporaryDirectory(prefix="mlbatch_tb_")
            tb_dir = self._tb_local.name
        # purge_step drops events a killed run wrote after the checkpoint we resume from
        self._tb = SummaryWriter(tb_dir, purge_step=step or None)

    def on_train(self, result: dict[str, Any], curve: list[tuple[int, float]]) -> None:
        for step, value in curve:
            self._tb.add_scalar("train/loss", value, step)
        if result["seconds"] > 0:
            self._tb.add_scalar("train/examples_per_s", result["examples"] / result["seconds"],
                                result["step"])

    def on_epoch(self, record: dict[str, Any], blob: bytes, improved: bool) -> None:
        self.checkpoints.save(record["step"], blob)
        for k, v in record.items():
            if k.startswith("eval_") and isinstance(v, float):
                self._tb.add_scalar(f"eval/{k[5:]}", v, record["step"])
        self._tb.flush()
        if improved:
            export_model(blob, self.at(MODEL_DIR))

    def on_checkpoint(self, step: int, blob: bytes) -> None:
        self.checkpoints.save(step, blob)

    def on_end(self, summary: dict[str, Any]) -> None:
        doc = {k: v for k, v in summary.items() if k != "curve"}
        doc.update({k: v for k, v in summary["best"].items() if k.startswith("eval_")})
        write_json(self.at("metrics.json"), doc)
        plot_curves(summary, self.at("curves.png"))
        if self._tb is not None:
            self._tb.close()
        if self._tb_local is not None:
            storage.copy_tree(self._tb_local.name, self.at("tensorboard"))
            self._tb_local.cleanup()
        log.info("wrote %s", self.at("metrics.json"))


def plot_curves(summary: dict[str, Any], uri: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = summary["history"]
    extra = next((k for k in ("eval_auc", "eval_auc_ovr_macro") if epochs and k in epochs[0]),
                 "eval_rmse")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    if summary["curve"]:
        s, v = zip(*summary["curve"])
        axes[0].plot(s, v)
    axes[0].set(title="train loss (incl. L2)", xlabel="step")
    xs = [e["step"] for e in epochs]
    axes[1].plot(xs, [e["eval_loss"] for e in epochs], marker="o")
    axes[1].set(title="eval loss", xlabel="step")
    axes[2].plot(xs, [e.get(extra) for e in epochs], marker="o")
    axes[2].set(title=extra.replace("_", " "), xlabel="step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    storage.write_bytes(uri, buf.getvalue())
