"""Training and inference throughput of DualHeadClassifier against bare PyTorch.

Run: ``python benchmarks/bench_train.py [--size 64] [--backbones simple inception vgg16]``.
Side by side in one run, on the same data, model and batch size:

- samples/s of ``DualHeadClassifier.fit`` (skorch, 15 % validation, early stopping and
  LR scheduling callbacks, per-head accuracy) against a hand-written loop doing the
  same epochs (training pass plus validation pass), target >= 0.95x;
- samples/s of ``predict_proba`` against a bare ``model(x)`` under
  ``torch.inference_mode``, target >= 0.95x.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from spinecls import DualHeadClassifier
from spinecls.models import build_backbone

# VGG-16 trains at single-digit samples/s on two CPU cores: fewer samples for it.
SAMPLES = {"simple": 512, "inception": 512, "vgg16": 48}


def make_data(n, size, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, size, size), dtype=np.float32)
    y = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 3, n)])
    return X, y


def hand_loop(backbone, X, y, train, valid, epochs, batch_size, lr, seed):
    torch.manual_seed(seed)
    model = build_backbone(backbone, X.shape[1], 5, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    data = torch.utils.data.TensorDataset(X_t[train], y_t[train])
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
    valid_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X_t[valid], y_t[valid]), batch_size=batch_size
    )
    ce = nn.functional.cross_entropy
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            condition, severity = model(xb)
            loss = ce(condition, yb[:, 0]) + ce(severity, yb[:, 1])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for xb, yb in valid_loader:
                condition, severity = model(xb)
                (ce(condition, yb[:, 0]) + ce(severity, yb[:, 1])).item()
    return model


def bare_predict(model, X, batch_size):
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            model(torch.from_numpy(X[start : start + batch_size]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", default=list(SAMPLES))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} px")
    for backbone in args.backbones:
        n = SAMPLES.get(backbone, 256)
        X, y = make_data(n, args.size)
        clf = DualHeadClassifier(
            backbone=backbone,
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            early_stopping=args.epochs + 1,
            random_state=0,
        )
        fit_times, loop_times, proba_times, bare_times = [], [], [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            clf.fit(X, y)
            fit_times.append(time.perf_counter() - start)
            valid = clf.valid_index_
            train = np.setdiff1d(np.arange(n), valid)
            start = time.perf_counter()
            model = hand_loop(backbone, X, y, train, valid, args.epochs, args.batch_size, 1e-3, 0)
            loop_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            clf.predict_proba(X)
            proba_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare_predict(model, X, args.batch_size)
            bare_times.append(time.perf_counter() - start)
        trained = len(train) * args.epochs
        fit_rate, loop_rate = trained / min(fit_times), trained / min(loop_times)
        proba_rate, bare_rate = n / min(proba_times), n / min(bare_times)
        # ratios within a round (neighbours in time), median over rounds
        fit_ratio = np.median(np.array(loop_times) / np.array(fit_times))
        proba_ratio = np.median(np.array(bare_times) / np.array(proba_times))
        print(
            f"{backbone:>10}: fit {fit_rate:8.1f} samples/s vs hand loop {loop_rate:8.1f} "
            f"-> {fit_ratio:.2f}x (target >= 0.95x); predict_proba "
            f"{proba_rate:8.1f} vs bare model(x) {bare_rate:8.1f} -> "
            f"{proba_ratio:.2f}x (target >= 0.95x)   [{n} samples, "
            f"{args.epochs} epochs, median of {args.repeat} rounds]"
        )


if __name__ == "__main__":
    main()
