from __future__ import annotations

from pathlib import Path

from yolospan import _contract_doc
from yolospan import attributes as A

DOC = Path(__file__).resolve().parents[1] / "docs" / "span-contract.md"
# The issue that defined the contract asks for both; everything else keeps leaves and prefixes apart.
LEAF_AND_PREFIX_ALLOWED = {A.FLOPS}


def attribute_keys() -> list[str]:
    return [e.value for e in _contract_doc.entries() if e.value.startswith(A.NAMESPACE + ".")]


def test_the_document_is_generated_from_the_module():
    assert DOC.read_text(encoding="utf-8") == _contract_doc.render(), (
        "docs/span-contract.md is stale: run python -m yolospan._contract_doc > docs/span-contract.md"
    )


def test_every_constant_is_documented():
    undocumented = [e.constant for e in _contract_doc.entries() if not e.doc]
    assert undocumented == []


def test_keys_are_unique_and_namespaced():
    keys = attribute_keys()
    assert len(keys) == len(set(keys))
    span_names = {
        A.SPAN_MODEL_INIT,
        A.SPAN_FORWARD,
        *A.PHASE_SPAN_NAMES,
        *A.TRAINING_SPAN_NAMES,
        *A.TRAINING_PHASES,
    }
    others = {e.value for e in _contract_doc.entries()} - set(keys) - span_names - {A.NAMESPACE}
    assert others == set()


def test_no_key_is_both_a_leaf_and_a_prefix_of_another():
    keys = attribute_keys()
    clashes = {k for k in keys for other in keys if other.startswith(k + ".")}
    assert clashes <= LEAF_AND_PREFIX_ALLOWED


def test_indexed_keys_follow_their_templates():
    assert A.output_shape_key(3) == "yolospan.output.3.shape"
    assert A.input_shape_key(0) == "yolospan.input.0.shape"
