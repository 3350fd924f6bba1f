"""Runs in the peer virtualenv (.venv-peers, which has sae-lens): the real-SAELens side of tests/test_interop.py.

    python saelens_side.py load FOLDER INPUTS OUT      SAE.load_from_disk(FOLDER); encode/decode/forward on INPUTS
    python saelens_side.py make ARCH FOLDER INPUTS OUT  a random SAELens ARCH SAE saved to FOLDER, and its outputs

INPUTS and OUT are safetensors files ("x" in; "feature_acts", "decoded", "forward" out). Not part of the package.
"""

import sys

import torch
from safetensors.torch import load_file, save_file


def outputs(sae, x):
    with torch.no_grad():
        feature_acts = sae.encode(x)
        return {"feature_acts": feature_acts, "decoded": sae.decode(feature_acts), "forward": sae(x)}


def main() -> None:
    from sae_lens import SAE, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    command = sys.argv[1]
    if command == "load":
        folder, inputs, out = sys.argv[2:5]
        sae = SAE.load_from_disk(folder)
        print(type(sae).__name__, sae.cfg.architecture(), flush=True)
    else:
        arch, folder, inputs, out = sys.argv[2:6]
        torch.manual_seed(0)
        x = load_file(inputs)["x"]
        if arch == "topk":
            sae = TopKSAE(TopKSAEConfig(d_in=x.shape[1], d_sae=64, k=4))
        else:
            sae = StandardSAE(StandardSAEConfig(d_in=x.shape[1], d_sae=64))
        with torch.no_grad():  # make every tensor matter, b_dec included
            for p in sae.parameters():
                p.add_(0.1 * torch.randn_like(p))
        sae.save_model(folder)
    save_file({k: v.contiguous() for k, v in outputs(sae, load_file(inputs)["x"]).items()}, out)


if __name__ == "__main__":
    main()
