"""The data-only wire format between the grader and the learner's kernel: safetensors bytes (tensors) whose
metadata holds one JSON document (everything else), base64-encoded. Never pickle: decoding runs in the grader and
must not execute anything the learner's kernel sent. Every field is type-checked; anything unexpected is refused.
"""

from __future__ import annotations

import base64
import json

import torch
from safetensors.torch import load as _load_tensors
from safetensors.torch import save as _save_tensors

from ..exercises import Answer, Case

MIME = "application/vnd.switch-sae-mini.answers+json"  # the runner cell's one display output
MAX_BYTES = 64 * 2**20  # an answer larger than this is refused (the cases are tiny)


class ProtocolError(ValueError):
    """The kernel's answer could not be read: the exercise scores 0 with this message."""


def _pack(value, key: str, tensors: dict) -> dict:
    if isinstance(value, torch.Tensor):
        # a contiguous copy of its own: safetensors refuses shared memory and strided views
        tensors[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
        return {"t": key}
    if value is None:
        return {"none": True}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"cannot send a {type(value).__name__}")
    return {"v": value}


def _unpack(item, tensors: dict):
    if not isinstance(item, dict) or len(item) != 1:
        raise ProtocolError("malformed value")
    (kind, value), = item.items()
    if kind == "t":
        if not isinstance(value, str) or value not in tensors:
            raise ProtocolError("a tensor is missing")
        return tensors[value]
    if kind == "none" and value is True:
        return None
    if kind == "v" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ProtocolError("malformed value")


def _encode(doc: dict, tensors: dict) -> str:
    blob = _save_tensors(tensors, metadata={"doc": json.dumps(doc)})
    return base64.b64encode(blob).decode("ascii")


def _decode(text) -> tuple[dict, dict]:
    if not isinstance(text, str) or len(text) > MAX_BYTES * 4 // 3 + 4:
        raise ProtocolError("the answer is not a string of the expected size")
    try:
        blob = base64.b64decode(text.encode("ascii"), validate=True)
        tensors = _load_tensors(blob)
        header_len = int.from_bytes(blob[:8], "little")
        meta = json.loads(blob[8:8 + header_len]).get("__metadata__", {})
        doc = json.loads(meta["doc"])
    except Exception as exc:  # base64, safetensors and JSON errors of several types
        raise ProtocolError(f"the answer could not be decoded ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ProtocolError("malformed answer")
    return doc, tensors


def encode_cases(name: str, cases: list[Case]) -> str:
    tensors: dict = {}
    doc = {"exercise": name, "cases": [
        {"args": [_pack(a, f"c{c}a{i}", tensors) for i, a in enumerate(case.args)], "label": case.label,
         "grad_of": list(case.grad_of), "weights": [_pack(w, f"c{c}w{i}", tensors) for i, w in enumerate(case.weights)]}
        for c, case in enumerate(cases)]}
    return _encode(doc, tensors)


def decode_cases(text: str) -> tuple[str, list[Case]]:
    doc, tensors = _decode(text)
    cases = [Case(tuple(_unpack(a, tensors) for a in c["args"]), c["label"], tuple(c["grad_of"]),
                  tuple(_unpack(w, tensors) for w in c["weights"])) for c in doc["cases"]]
    return doc["exercise"], cases


def encode_answers(answers: list[Answer]) -> str:
    tensors: dict = {}
    doc = {"answers": [
        {"outputs": [_pack(o, f"c{c}o{i}", tensors) for i, o in enumerate(a.outputs)],
         "grads": [_pack(g, f"c{c}g{i}", tensors) for i, g in enumerate(a.grads)],
         "error": a.error, "reference_hits": list(a.reference_hits)} for c, a in enumerate(answers)]}
    return _encode(doc, tensors)


def decode_answers(text, cases: list[Case]) -> list[Answer]:
    """The answers, checked against the cases the grader sent: one per case, one gradient per grad_of entry."""
    doc, tensors = _decode(text)
    items = doc.get("answers")
    if not isinstance(items, list) or len(items) != len(cases):
        raise ProtocolError(f"expected {len(cases)} answers")
    answers = []
    for item, case in zip(items, cases):
        if not isinstance(item, dict) or set(item) != {"outputs", "grads", "error", "reference_hits"}:
            raise ProtocolError("malformed answer")
        outputs = tuple(_unpack(o, tensors) for o in item["outputs"]) if isinstance(item["outputs"], list) else None
        grads = tuple(_unpack(g, tensors) for g in item["grads"]) if isinstance(item["grads"], list) else None
        error, hits = item["error"], item["reference_hits"]
        if outputs is None or grads is None or not isinstance(error, str) or not isinstance(hits, list) or \
                not all(isinstance(h, str) for h in hits):
            raise ProtocolError("malformed answer")
        if not error and len(grads) != len(case.grad_of):
            raise ProtocolError("the gradients do not match the case")
        answers.append(Answer(outputs, grads, error[:2000], tuple(h[:200] for h in hits)))
    return answers
