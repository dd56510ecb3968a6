"""The detection and segmentation models: the layer graph, run with upstream's save list.

Constructing a model runs nothing; the lifecycle steps in `yolospan.yolo.lifecycle` probe the
strides, initialise the head and profile it, each as an explicit call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from yolospan.tracing import Layer, LayerClock, layer_clock
from yolospan.yolo.heads import Detect

if TYPE_CHECKING:
    from yolospan.yolo.spec import ModelSpec

__all__ = ["DetectionModel", "Route", "SegmentationModel"]


class Route(NamedTuple):
    """Where a layer reads from (an index, or several for Concat and heads) and its type name."""

    source: int | tuple[int, ...]
    type: str


class DetectionModel(nn.Module):
    """YOLOv5 detection model. ``model`` holds the layers (as upstream, so state-dict keys match).

    ``forward`` returns the head's output: per-level maps in training mode, ``(predictions, maps)``
    in eval mode.
    """

    def __init__(
        self, spec: ModelSpec, layers: Sequence[nn.Module], routes: Sequence[Route], save: Iterable[int]
    ) -> None:
        super().__init__()
        if not isinstance(layers[-1], Detect):
            raise TypeError(f"the last layer must be a Detect head, got {type(layers[-1]).__name__}")
        self.spec = spec
        self.model = nn.Sequential(*layers)
        self.save = tuple(sorted(set(save)))
        self.routes = tuple(routes)
        kept = set(self.save)
        # (source, keep-output) per layer, precomputed so forward does no lookups beyond upstream's.
        self._plan = tuple((route.source, index in kept) for index, route in enumerate(self.routes))

    @property
    def head(self) -> Detect:
        head = self.model[-1]
        assert isinstance(head, Detect)
        return head

    @property
    def nc(self) -> int:
        return self.head.nc

    @property
    def names(self) -> list[str]:
        return [str(i) for i in range(self.nc)]

    @property
    def stride(self) -> torch.Tensor | None:
        """Strides of the detection levels, e.g. ``tensor([8., 16., 32.])``; None before the stride probe."""
        return self.head.stride

    def forward(self, image: torch.Tensor) -> Any:
        clock = layer_clock(self)
        if clock is not None:  # yolospan records this forward's layers (layers=True)
            return self._forward_clocked(image, clock)
        x: Any = image
        saved: list[Any] = []
        for layer, (source, keep) in zip(self.model, self._plan, strict=True):
            if source != -1:
                x = saved[source] if isinstance(source, int) else [x if j == -1 else saved[j] for j in source]
            x = layer(x)
            saved.append(x if keep else None)
        return x

    @torch.jit.unused
    def _forward_clocked(self, image: torch.Tensor, clock: LayerClock) -> Any:
        """`forward`, noting the clock around each layer for yolospan's layer spans."""
        x: Any = image
        saved: list[Any] = []
        ticks, now = clock.ticks, time.time_ns
        call = clock.call if clock.describing else None
        tick = 0
        for layer, (source, keep) in zip(self.model, self._plan, strict=True):
            if source != -1:
                x = saved[source] if isinstance(source, int) else [x if j == -1 else saved[j] for j in source]
            ticks[tick] = now()
            x = layer(x) if call is None else call(tick >> 1, layer, x)
            ticks[tick + 1] = now()
            tick += 2
            saved.append(x if keep else None)
        return x

    def clocks_its_layers(self) -> bool:
        """yolospan times this model's layers in its own loop (`yolospan.tracing.ClockedModule`)."""
        return True

    def traced_layers(self) -> list[Layer]:
        """The config's rows as yolospan's layer spans describe them (index, type, ``from``)."""
        layers = []
        for index, (module, route) in enumerate(zip(self.model, self.routes, strict=True)):
            sources = route.source if isinstance(route.source, tuple) else (route.source,)
            layers.append(Layer(index, module, route.type, sources))
        return layers


class SegmentationModel(DetectionModel):
    """YOLOv5 instance-segmentation model: a `Segment` head, which adds mask prototypes to the output."""
