"""The `lamina` command: `lamina tsc DATASET …` and `lamina plot {activations,norms} -o FILE`."""

from __future__ import annotations

import argparse
import sys


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from lamina import plots

    figure = getattr(plots, args.what)()
    figure.savefig(args.output, dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamina", description="Keras-style deep learning on PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    plot = sub.add_parser("plot", help="draw a concept as a PNG")
    plot.add_argument("what", choices=["activations", "norms"])
    plot.add_argument("-o", "--output", required=True, help="the image file to write")
    plot.add_argument("--dpi", type=int, default=110)
    plot.set_defaults(run=_plot)
    from lamina.tsc.cli import add_parser as add_tsc

    add_tsc(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
