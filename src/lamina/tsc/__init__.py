"""Time-series classification: the FCN / ResNet / MLP / LSTM-FCN baselines and their protocol."""

from lamina.tsc.models import MODELS, fcn, lstm_fcn, mlp, resnet
from lamina.tsc.protocol import PROTOCOLS, build_model, train_and_evaluate
from lamina.tsc.published import published

__all__ = ["fcn", "resnet", "mlp", "lstm_fcn", "MODELS", "PROTOCOLS", "build_model", "train_and_evaluate",
           "published"]
