"""Hidden cases for the course's graded exercises: instructor-only. Pass this file to the grader,

    SSM_GRADING_SEED=<your secret> python -m switch_sae_mini grade class/ --hidden-cases instructor/hidden_cases.py

and keep it out of what students receive (`make assignments` never copies it). This copy is public with the
repository, so a real course should change or extend it; the secret seed of the random cases is the other half of
what students do not see. Each case targets a mistake the visible case cannot reveal.
"""

import torch

from switch_sae_mini.classroom.exercises import Case, switch_case


def hidden_cases() -> dict[str, list[Case]]:
    gen = torch.Generator().manual_seed(2024)
    axes = torch.eye(3) * torch.tensor([1.0, 2.0, 3.0])[:, None]
    logits = torch.randn(12, 4, generator=gen)
    logits[:, 3] = -10.0  # expert 3 receives no token
    probs = torch.softmax(logits, -1)
    return {
        # symmetric around the origin, which is itself a data point: distance 0 at the estimate
        "geometric_median": [Case((torch.cat([torch.zeros(1, 3), axes, -axes]),), "a point at the estimate")],
        "load_balance_loss": [Case((probs, probs.argmax(-1), 4), "an expert without tokens", grad_of=(0,),
                                   weights=(torch.tensor(1.0),))],
        "switch_latents": [switch_case(5, 40, 3, 4, 7, gen, "other sizes"),
                           switch_case(4, 12, 2, 3, 1, gen, "a batch of one")],
        "l1_penalty": [Case((torch.relu(torch.randn(1, 7, generator=gen)), torch.randn(7, 3, generator=gen)),
                            "a batch of one", grad_of=(0, 1), weights=(torch.tensor(1.0),))],
        "topk_activation": [Case((torch.randn(1, 6, generator=gen), 6), "k equal to the width")],
        # a parameter entry whose gradient is exactly 0 at the first step: 0/0 without eps
        "adam_update": [Case((torch.randn(3, 4, generator=gen), torch.zeros(3, 4), torch.zeros(3, 4),
                              torch.zeros(3, 4), 1, 1e-3), "a zero gradient at the first step")],
        "relu_sae_loss": [Case((torch.randn(1, 5, generator=gen), torch.randn(5, 9, generator=gen),
                                torch.randn(9, generator=gen), torch.randn(9, 5, generator=gen),
                                torch.randn(5, generator=gen), 3.0), "a batch of one", grad_of=(1, 2, 3, 4),
                               weights=(torch.tensor(1.0), None, None))],
    }
