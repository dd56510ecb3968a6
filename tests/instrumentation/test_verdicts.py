"""Upstream's AMP answer and log lines → the amp_check span's verdict (no upstream package needed)."""

from __future__ import annotations

from yolospan import attributes as A
from yolospan.instrumentation._model import amp_verdict


def test_on_cpu_upstream_skips_and_says_false():
    attrs = amp_verdict(False, "cpu", [])
    assert attrs[A.AMP_RESULT] == "skipped" and attrs[A.AMP_ENABLED] is False
    assert "cpu" in str(attrs[A.AMP_REASON])


def test_offline_ultralytics_keeps_amp_on_and_its_own_words_are_the_reason():
    said = [
        "AMP: running Automatic Mixed Precision (AMP) checks...",
        "AMP: checks skipped. Offline and unable to download YOLO11n for AMP checks. Setting 'amp=True'.",
    ]
    attrs = amp_verdict(True, "cuda", said)
    assert attrs[A.AMP_RESULT] == "skipped" and attrs[A.AMP_ENABLED] is True
    assert "Offline and unable to download YOLO11n" in str(attrs[A.AMP_REASON])


def test_on_cuda_passed_and_failed_follow_what_upstream_returned():
    assert amp_verdict(True, "cuda", ["AMP: checks passed ✅"])[A.AMP_RESULT] == "passed"
    failed = amp_verdict(False, "cuda", ["AMP: checks failed ❌, disabling Automatic Mixed Precision."])
    assert failed[A.AMP_RESULT] == "failed" and "disabling" in str(failed[A.AMP_REASON])
    assert amp_verdict(False, "cuda", [])[A.AMP_REASON] == "upstream's check_amp returned False"
