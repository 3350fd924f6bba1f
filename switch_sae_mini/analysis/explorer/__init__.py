"""The expert explorer (notebook 06): data precomputed once (data.py), HTML views (html.py), the ipywidgets app
(widget.py).

    from switch_sae_mini.analysis.explorer import expert_explorer
    app = expert_explorer(model, {"E=8": sae8, "E=32": sae32})
"""

from .data import ExplorerData, SAEView
from .widget import ExpertExplorer, expert_explorer, interaction_latency

__all__ = ["ExpertExplorer", "ExplorerData", "SAEView", "expert_explorer", "interaction_latency"]
