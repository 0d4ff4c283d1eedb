"""The small torch MLP that ``finetuner demo`` tailors and ``finetuner label`` starts from by default.

It ships with the package (an installed finetuner has no ``models/`` zoo); the zoo re-exports it as
``models.torch_zoo.MLP``. torch is imported when this module is, so import it only where torch is wanted.
"""

from __future__ import annotations

from tailor_ir.imports import import_torch

torch = import_torch()

__all__ = ["MLP"]


class MLP(torch.nn.Module):
    """64 -> 128 -> 64 -> 10 with ReLU and Dropout (sklearn digits as flat vectors)."""

    def __init__(self, in_features: int = 64, hidden: tuple[int, ...] = (128, 64), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU(), torch.nn.Dropout(0.1)]
            width = h
        self.body = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
