"""Datasets: `load_ucr(name)` for the UCR/UEA time-series archives that aeon ships."""

from lamina.data.ucr import UCRDataset, load_ucr, znormalise

__all__ = ["load_ucr", "UCRDataset", "znormalise"]
