"""tailor_ir: the model-graph compiler (framework model -> ONNX -> surgery -> trainable framework model)."""
