"""One process of the two-process accelerate test (tests/test_accelerate.py).

Run as a script under the environment ``torch.distributed`` reads (MASTER_ADDR,
MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK): it trains DualHeadClassifier through an
``Accelerator(cpu=True)`` with the global batch ``GLOBAL_BATCH`` split over the
processes and, on the main process, writes both heads' probabilities on the training
images to ``argv[1]``. The global batch holds all 32 samples: one step per epoch, so the
batches do not depend on accelerate's shuffling, which draws another order than a run
without an accelerator.
"""

from __future__ import annotations

import sys

import numpy as np
from torch import nn

GLOBAL_BATCH = 32
PARAMS = dict(max_epochs=2, valid_size=None, random_state=0, module__width=8)


class NoBatchNorm(nn.Module):
    """A backbone without batch norm or dropout: data-parallel training then computes
    exactly what one process computes (batch norm statistics are per process)."""

    def __init__(self, in_channels, n_conditions, n_severities, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.condition = nn.Linear(4 * width, n_conditions)
        self.severity = nn.Linear(4 * width, n_severities)

    def forward(self, x):
        h = self.body(x)
        return self.condition(h), self.severity(h)


def data() -> tuple[np.ndarray, np.ndarray]:
    """32 images of 32 px and their two labels."""
    rng = np.random.default_rng(0)
    X = rng.random((32, 1, 32, 32), dtype=np.float32)
    y = np.column_stack([rng.integers(0, 3, 32), rng.integers(0, 3, 32)])
    return X, y


def main(out: str) -> None:
    from accelerate import Accelerator

    from spinecls import DualHeadClassifier

    accelerator = Accelerator(cpu=True)
    X, y = data()
    per_process = GLOBAL_BATCH // accelerator.num_processes
    clf = DualHeadClassifier(
        backbone=NoBatchNorm, batch_size=per_process, accelerator=accelerator, **PARAMS
    ).fit(X, y)
    probas = clf.predict_proba(X)
    if accelerator.is_main_process:
        np.savez(out, condition=probas[0], severity=probas[1], processes=accelerator.num_processes)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    # the process group's threads must stop before the interpreter does: left to exit, gloo
    # sometimes aborts a process ("terminate called without an active exception")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
