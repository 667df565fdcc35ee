"""One-step-ahead forecasting of aeon's Airline series with a causal Conv1D.

The monthly passenger counts (1949-1960) are log-scaled and standardised on the training years;
`timeseries_dataset_from_array` cuts 24-month windows whose target is the following month; a
stack of causal, dilated Conv1D layers (each output sees only the past) reads each window; the
last 24 months are forecast one step ahead and drawn against the truth, beside the seasonal-naive
forecast (the same month a year before).

    python examples/forecast_airline.py [-o forecast.png]
"""

import argparse

import numpy as np

import lamina
from lamina import layers
from lamina.utils import timeseries_dataset_from_array

WINDOW, TEST = 24, 24


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default="forecast.png")
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    from aeon.datasets import load_airline

    lamina.utils.set_random_seed(0)
    series = np.asarray(load_airline(), dtype="float64").reshape(-1)
    logged = np.log(series)
    split = len(series) - TEST
    mean, std = logged[:split].mean(), logged[:split].std()
    scaled = ((logged - mean) / std).astype("float32")[:, None]

    train = timeseries_dataset_from_array(scaled[:split - 1], scaled[WINDOW:split], WINDOW,
                                          batch_size=16, shuffle=True, seed=0)
    model = lamina.Sequential([
        layers.Input((WINDOW, 1)),
        layers.Conv1D(32, 3, padding="causal", activation="relu"),
        layers.Conv1D(32, 3, padding="causal", dilation_rate=2, activation="relu"),
        layers.Conv1D(32, 3, padding="causal", dilation_rate=4, activation="relu"),
        layers.Lambda(lambda h: h[:, -1], output_shape=(32,)),  # the step that has seen the window
        layers.Dense(1),
    ])
    model.compile(optimizer=lamina.optimizers.Adam(3e-3), loss="mse")
    model.fit(train, epochs=args.epochs, verbose=0)

    starts = np.arange(split - WINDOW, len(series) - WINDOW)
    windows = np.stack([scaled[s:s + WINDOW] for s in starts])
    forecast = np.exp(model.predict(windows)[:, 0] * std + mean)
    truth = series[split:]
    seasonal_naive = series[split - 12:len(series) - 12]
    mae = np.abs(forecast - truth).mean()
    naive_mae = np.abs(seasonal_naive - truth).mean()
    print(f"test MAE over the last {TEST} months: Conv1D {mae:.1f}, seasonal naive {naive_mae:.1f} "
          "(thousands of passengers)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    months = np.arange(len(series))
    ax.plot(months, series, color="0.3", label="truth")
    ax.plot(months[split:], forecast, "o-", color="tab:red", ms=3, label=f"causal Conv1D (MAE {mae:.1f})")
    ax.plot(months[split:], seasonal_naive, "--", color="tab:blue",
            label=f"seasonal naive (MAE {naive_mae:.1f})")
    ax.axvline(split - 0.5, color="0.6", lw=0.8)
    ax.set(title="Airline passengers: one-step-ahead forecast of the last two years",
           xlabel="month since Jan 1949", ylabel="passengers (thousands)")
    ax.legend()
    fig.savefig(args.output, dpi=110, bbox_inches="tight")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
