"""Frontends: a framework's model -> ``Graph`` (ONNX + layer map). One module per framework, imported lazily."""
