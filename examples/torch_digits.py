"""Train a small CNN on scikit-learn's bundled 8×8 digits with SBPCA rank-k gradients.

    python examples/torch_digits.py --epochs 30 --rank 4 --sub-batch 16 --lr 0.1

Every Conv2d/Linear weight gradient is replaced by its SBPCA estimate built from the
layer's per-sample stream; biases keep their exact gradient.  No torchvision needed.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from pymodel.torch_sbpca import SBPCAGradient


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)   # 8×8 → 8×8, then pool → 4×4
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)  # 4×4 → 4×4, then pool → 2×2
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--sub-batch", type=int, default=16, help="streamed pairs per sub-batch")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny tensors: 1 is fastest)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # N×1×8×8
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y))
    test, train = perm[:360], perm[360:]

    model = SmallCNN()
    sbpca = SBPCAGradient(model, rank=args.rank, sub_batch=args.sub_batch, seed=args.seed)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)

    acc = 0.0
    for epoch in range(args.epochs):
        model.train()
        for idx in train[torch.randperm(len(train))].split(args.batch):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            sbpca.apply()  # weight.grad ← SBPCA estimate, same scale as the exact gradient
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
        print(f"epoch {epoch + 1:3d}  test accuracy {100 * acc:5.1f} %")
    return acc


if __name__ == "__main__":
    main()
