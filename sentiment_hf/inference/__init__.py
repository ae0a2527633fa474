"""Inference: the Predictor, its torch and ONNX backends, batch prediction and explanation."""
