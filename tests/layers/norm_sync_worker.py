"""One process of the synchronized-BatchNormalization test: normalizes its half of a batch with
statistics shared through torch.distributed (gloo) and saves what it computed."""

import sys

import torch
from torch import distributed as dist

from lamina import layers


def run(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        x = torch.randn(8, 5, 3) * 2 + 1
        cotangent = torch.randn(8, 5, 3)
        part = slice(rank * 4, rank * 4 + 4)
        mine = x[part].clone().requires_grad_()
        layer = layers.BatchNormalization(synchronized=True, gamma_initializer="random_uniform")
        out = layer(mine, training=True)
        (out * cotangent[part]).sum().backward()
        torch.save({"out": out.detach(), "grad": mine.grad, "gamma_grad": layer.gamma.grad,
                    "weights": layer.get_weights()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
