"""The transform's input tensors, one TFXIO adapter config for training and serving: the
feature job hands it to tf.Transform with ``prepare.to_tfxio_batch``'s batches, serving
turns ``prepare.tfxio_inputs`` into tensors with it for the saved transform_fn."""
from __future__ import annotations

import pyarrow as pa
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.tfxio import tensor_adapter

from beam_jobs.tabular import prepare
from mlbatch.schema import DatasetSchema


def tensor_adapter_config(schema: DatasetSchema, arrow_schema: pa.Schema
                          ) -> tensor_adapter.TensorAdapterConfig:
    """Every transform input as a varlen sparse tensor (missing = no value)."""
    reps = {}
    for name in schema.transform_inputs():
        rep = schema_pb2.TensorRepresentation()
        rep.varlen_sparse_tensor.column_name = name
        reps[name] = rep
    return tensor_adapter.TensorAdapterConfig(arrow_schema, reps)


def serving_tensors(t: pa.Table, schema: DatasetSchema) -> dict:
    """The transform's raw inputs for prepared rows (eager tensors), built from the same
    Arrow layout and adapter config as the feature job's."""
    import tensorflow as tf

    batch = prepare.tfxio_inputs(t, schema)
    adapter = tensor_adapter.TensorAdapter(tensor_adapter_config(schema, batch.schema))
    tensors = adapter.ToBatchTensors(batch, produce_eager_tensors=True)
    # A column without a value in this batch comes out [n, 0]; the transform's inputs
    # hold at most one value per row, so give it the width every other batch has.
    return {name: tf.sparse.reset_shape(x, [batch.num_rows, 1]) if x.dense_shape[1] == 0
            else x for name, x in tensors.items()}
