"""A tiny config shared by the yolo tests (a plain module: conftest modules are not importable by name)."""

from __future__ import annotations

TINY_YAML = """\
# A tiny two-level detector (strides 4 and 8) for fast tests of the wiring.
nc: 2
depth_multiple: 1.0
width_multiple: 1.0
anchors:
  - [10,13, 16,30]
  - [30,61, 62,45]
backbone:
  [[-1, 1, Conv, [8, 3, 2]],  # 0-P1/2
   [-1, 1, Conv, [16, 3, 2]],  # 1-P2/4
   [-1, 1, C3, [16]],  # 2
   [-1, 1, Conv, [32, 3, 2]],  # 3-P3/8
   [-1, 1, SPPF, [32, 5]],  # 4
  ]
head:
  [[-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 5
   [[-1, 2], 1, Concat, [1]],  # 6
   [-1, 1, C3, [16, False]],  # 7 (P2/4)
   [[7, 4], 1, Detect, [nc, anchors]],  # 8
  ]
"""
