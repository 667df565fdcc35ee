"""Published test accuracies (see shared anchors): Ismail Fawaz et al. 2019 (mean over 10 runs,
std where given) for MLP/FCN/ResNet, Karim et al. 2017 for LSTM-FCN; for the Inception family
the authors' per-dataset results files: LITE, LITETime, Inception and InceptionTime from
MSD-IRIMAS/LITE results.csv (Ismail-Fawaz et al. 2023; single networks: mean over 5 runs),
H-Inception (mean ± std over 5 runs) and H-InceptionTime from MSD-IRIMAS/CF-4-TSC
results/H-Inception/results_UCR_128.csv (Ismail-Fawaz et al. 2022)."""

PUBLISHED = {
    ("GunPoint", "mlp"): (0.927, None), ("GunPoint", "fcn"): (1.000, None),
    ("GunPoint", "resnet"): (0.991, None), ("GunPoint", "lstm_fcn"): (1.000, None),
    ("ItalyPowerDemand", "mlp"): (0.954, None), ("ItalyPowerDemand", "fcn"): (0.961, 0.003),
    ("ItalyPowerDemand", "resnet"): (0.963, None), ("ItalyPowerDemand", "lstm_fcn"): (0.963, None),
    ("OSULeaf", "mlp"): (0.557, None), ("OSULeaf", "fcn"): (0.977, 0.009),
    ("OSULeaf", "resnet"): (0.979, None), ("OSULeaf", "lstm_fcn"): (0.996, None),
    ("GunPoint", "inception"): (0.999, None), ("GunPoint", "inceptiontime"): (1.000, None),
    ("GunPoint", "h-inception"): (0.999, 0.003), ("GunPoint", "h-inceptiontime"): (1.000, None),
    ("GunPoint", "lite"): (0.997, None), ("GunPoint", "litetime"): (1.000, None),
    ("ItalyPowerDemand", "inception"): (0.966, None), ("ItalyPowerDemand", "inceptiontime"): (0.965, None),
    ("ItalyPowerDemand", "h-inception"): (0.968, 0.001),
    ("ItalyPowerDemand", "h-inceptiontime"): (0.969, None),
    ("ItalyPowerDemand", "lite"): (0.969, None), ("ItalyPowerDemand", "litetime"): (0.967, None),
    ("ArrowHead", "inception"): (0.846, None), ("ArrowHead", "inceptiontime"): (0.851, None),
    ("ArrowHead", "h-inception"): (0.875, 0.023), ("ArrowHead", "h-inceptiontime"): (0.891, None),
    ("ArrowHead", "lite"): (0.822, None), ("ArrowHead", "litetime"): (0.840, None),
    ("OSULeaf", "inception"): (0.930, None), ("OSULeaf", "inceptiontime"): (0.934, None),
    ("OSULeaf", "h-inception"): (0.935, 0.012), ("OSULeaf", "h-inceptiontime"): (0.950, None),
    ("OSULeaf", "lite"): (0.956, None), ("OSULeaf", "litetime"): (0.955, None),
}


def published(dataset: str, model: str):
    """(mean, std or None) of the published accuracy, or None when none is known."""
    return PUBLISHED.get((dataset, model))
