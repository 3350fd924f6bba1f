"""The expert explorer (notebook 06): data precomputed once (data.py), HTML views (html.py), the ipywidgets app
(widget.py); and the blind self-rating of features (rating.py).

    from switch_sae_mini.analysis.explorer import expert_explorer
    app = expert_explorer(model, {"E=8": sae8, "E=32": sae32})
"""

from .data import ExplorerData, SAEView
from .rating import BlindRating, RatingItem, SAEMean, rating_widget
from .widget import ExpertExplorer, expert_explorer, interaction_latency

__all__ = ["BlindRating", "ExpertExplorer", "ExplorerData", "RatingItem", "SAEMean", "SAEView", "expert_explorer",
           "interaction_latency", "rating_widget"]
