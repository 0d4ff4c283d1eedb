"""Keras backend: ``Graph`` -> a trainable ``keras.Model`` built by one converter per ONNX op.

Design A of ENVIRONMENT.md: one ``keras.Layer`` (``OnnxGraphLayer``) holds every weight initializer as a Keras
variable and runs the ONNX nodes in ``call()`` with TensorFlow ops, each node through the converter registered
for its op (``ops/``). The rehydrated model is a functional ``keras.Model`` around that layer. Why A and not B
(real ``Conv2D``/``Dense``/... layers plus a generic op layer): both trained equally fast on CNNs in the
prototype, but A keeps weight tying (one variable per initializer, however many nodes read it), per-weight
freezing (``graph.frozen`` can name any single initializer), needs no shape inference, and also trains weights
that reach their op through a Transpose/Reshape (as tf2onnx does with every Keras kernel and bias), which B's
layer patterns miss; B's only gain, a Keras-native ``summary()``, costs static shapes at every generic layer.

- every initializer in ``graph.weights`` is exactly one trainable variable (non-trainable if in
  ``graph.frozen``); Keras forbids ``/`` in variable names, so names are sanitised and ``weight_names`` maps
  the initializer names to the variables; other initializers are constants (folded once at build time,
  never through a weight);
- BatchNormalization statistics are non-trainable variables, updated in training (``momentum`` from the
  node); Dropout is random when Keras calls the model with ``training=True`` and identity otherwise;
- each tensor carries an NHWC layout tag (``values.py``), so convolution graphs run channels-last on CPU with
  no transpose pair around every convolution; padding is ``SAME`` or ``tf.pad`` + ``VALID``;
- LSTM/GRU keep ONNX's gate order and two biases (``ops/recurrent.py``);
- the model saves as ``.keras`` and loads back in a fresh process once this package is imported
  (``OnnxGraphLayer`` is registered with ``keras.saving``); its config carries the graph without the
  variables' data, which Keras stores itself;
- ``current_initializers(model)`` reads back every weight and BN statistic by initializer name, so trained
  values can be written into the ONNX graph;
- a node without a converter raises ``UnsupportedOpError`` before anything is built; ``rehydrate(...,
  check=True)`` compares the model with onnxruntime and raises ``EquivalenceError`` beyond 1e-4 relative.
"""

from __future__ import annotations

from .layer import OnnxGraphLayer, graph_layer, numpy_forward, rehydrate
from .registry import converter, supported_ops
from .state import current_initializers

__all__ = ["OnnxGraphLayer", "converter", "current_initializers", "graph_layer", "numpy_forward", "rehydrate", "supported_ops"]
