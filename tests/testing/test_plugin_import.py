"""The plugin loads in every pytest run of any project that has yolospan installed: keep it light."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_plugin_imports_neither_torch_nor_the_sdk():
    code = (
        "import sys, yolospan.testing.pytest_plugin;"
        "print(sorted(m for m in ('torch', 'opentelemetry.sdk') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
