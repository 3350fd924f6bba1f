"""Every plot helper's figure appears exactly once in a real Jupyter kernel with the inline backend (it used to
appear twice: once shown by pyplot at the end of the cell, once as the cell's returned value)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

CELLS = {
    "plot_history": "ssm.plotting.plot_history({'a': [{'tokens': 1, 'fvu': 0.5, 'l0': 3, 'dead_fraction': 0.1},"
                    " {'tokens': 2, 'fvu': 0.4, 'l0': 3, 'dead_fraction': 0.0}]})",
    "plot_tradeoff": "ssm.plotting.plot_tradeoff({'TopK': [(8, 0.3), (16, 0.2)]}, ylabel='FVU')",
    "plot_expert_usage": "ssm.plotting.plot_expert_usage(torch.tensor([0.5, 0.3, 0.2]))",
}


@pytest.mark.slow
def test_each_plot_helper_shows_one_image_under_the_inline_backend():
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's default: inline
    nb = new_notebook(cells=[new_code_cell("import torch, switch_sae_mini as ssm\n"
                                           "import matplotlib; print(matplotlib.get_backend())")]
                      + [new_code_cell(source) for source in CELLS.values()])
    client = NotebookClient(nb, kernel_name="python3", timeout=120)
    client.km = client.create_kernel_manager()
    import sys
    client.km.kernel_spec.argv[:] = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    assert "inline" in nb.cells[0].outputs[0]["text"]
    for name, cell in zip(CELLS, nb.cells[1:]):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (name, [o.get("output_type") for o in cell.outputs])
