"""Time-series classification: the FCN / ResNet / MLP / LSTM-FCN baselines, InceptionTime,
H-InceptionTime and LITE(Time), and their protocol."""

from lamina.tsc.models import (
    MODELS,
    fcn,
    h_inception,
    h_inception_time,
    inception,
    inception_time,
    lite,
    lite_time,
    lstm_fcn,
    mlp,
    resnet,
)
from lamina.tsc.protocol import PROTOCOLS, build_model, train_and_evaluate
from lamina.tsc.published import published

__all__ = ["fcn", "resnet", "mlp", "lstm_fcn", "inception", "inception_time", "h_inception",
           "h_inception_time", "lite", "lite_time", "MODELS", "PROTOCOLS", "build_model",
           "train_and_evaluate", "published"]
