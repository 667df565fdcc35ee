"""Published test accuracies (see shared anchors): Ismail Fawaz et al. 2019 (mean over 10 runs,
std where given) for MLP/FCN/ResNet, Karim et al. 2017 for LSTM-FCN."""

PUBLISHED = {
    ("GunPoint", "mlp"): (0.927, None), ("GunPoint", "fcn"): (1.000, None),
    ("GunPoint", "resnet"): (0.991, None), ("GunPoint", "lstm_fcn"): (1.000, None),
    ("ItalyPowerDemand", "mlp"): (0.954, None), ("ItalyPowerDemand", "fcn"): (0.961, 0.003),
    ("ItalyPowerDemand", "resnet"): (0.963, None), ("ItalyPowerDemand", "lstm_fcn"): (0.963, None),
    ("OSULeaf", "mlp"): (0.557, None), ("OSULeaf", "fcn"): (0.977, 0.009),
    ("OSULeaf", "resnet"): (0.979, None), ("OSULeaf", "lstm_fcn"): (0.996, None),
}


def published(dataset: str, model: str):
    """(mean, std or None) of the published accuracy, or None when none is known."""
    return PUBLISHED.get((dataset, model))
