"""Open a model file that the other framework saved and predict on the probe saved beside it.

usage: open_saved.py MODEL.keras [WEIGHTS.weights.h5]  (run in the folder holding probe.npy)
With a weights file, the architecture comes from MODEL.keras and the weights from the .h5 file.
"""

import sys

import keras
import numpy as np
from scriptkit import save_results

model = keras.saving.load_model(sys.argv[1])
if len(sys.argv) > 2:
    model.load_weights(sys.argv[2])
save_results({"predict": model.predict(np.load("probe.npy"), verbose=0)})
