"""The grader's wire format (classroom/grading/protocol.py): data only, every field checked."""

import base64
import json

import pytest
import torch
from safetensors.torch import save

from switch_sae_mini.classroom.exercises import Answer, Case
from switch_sae_mini.classroom.grading.protocol import (ProtocolError, decode_answers, decode_cases, encode_answers,
                                                        encode_cases)


def test_cases_round_trip_with_shared_and_strided_tensors():
    one = torch.tensor(1.0)
    base = torch.randn(4, 6)
    cases = [Case((base[:, ::2], 3), "strided", grad_of=(0,), weights=(one,)),
             Case((base.t(), 2.5), "transposed", grad_of=(0,), weights=(one,))]  # `one` shared by both
    name, decoded = decode_cases(encode_cases("demo", cases))
    assert name == "demo" and [c.label for c in decoded] == ["strided", "transposed"]
    torch.testing.assert_close(decoded[0].args[0], base[:, ::2])
    assert decoded[1].args[1] == 2.5 and decoded[0].grad_of == (0,)


def test_answers_round_trip_and_are_checked_against_the_cases():
    cases = [Case((torch.ones(2),), "a", grad_of=(0,), weights=(torch.ones(2),))]
    answers = [Answer((torch.ones(2),), (None,), "", ("x:y",))]
    [back] = decode_answers(encode_answers(answers), cases)
    assert back.grads == (None,) and back.reference_hits == ("x:y",)
    with pytest.raises(ProtocolError, match="expected 1 answers"):
        decode_answers(encode_answers(answers * 2), cases)
    with pytest.raises(ProtocolError, match="gradients do not match"):
        decode_answers(encode_answers([Answer((torch.ones(2),), ())]), cases)


@pytest.mark.parametrize("payload", [
    "not base64!", base64.b64encode(b"garbage").decode(), 12,
    base64.b64encode(save({"t": torch.ones(1)}, metadata={"doc": json.dumps({"answers": [{"outputs": [{"t": "nope"}],
                     "grads": [], "error": "", "reference_hits": []}]})})).decode(),
    base64.b64encode(save({"t": torch.ones(1)}, metadata={"doc": json.dumps({"answers": [{"outputs": [
        {"v": True}], "grads": [], "error": "", "reference_hits": []}]})})).decode(),
])
def test_a_malformed_answer_is_refused(payload):
    with pytest.raises(ProtocolError):
        decode_answers(payload, [Case((), "a")])
