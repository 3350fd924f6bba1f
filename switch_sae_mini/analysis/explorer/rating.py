"""A blind self-rating of features (notebook 05): the learner sees the top contexts of a random feature of a
random SAE, rates how clearly they share one meaning, and only at the end learns which SAE each came from, with
the mean rating per SAE. Blind, because knowing "this is a Switch feature" colours the rating.

    rating = BlindRating.build({"TopK": (codes_topk, features), "Switch": (codes_sw, features)}, show_context,
                               n_items=12)
    rating_widget(rating)           # buttons 1-5 and skip; "reveal" shows per-SAE means
    rating.rate(4); rating.reveal() # the same from code

The session (BlindRating) is plain Python and tested; the widget only draws it.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import ipywidgets as widgets

from ...errors import ArgumentError, OutOfRangeError
from ..features import Encoded, top_activations

SCALE = {1: "no common pattern", 2: "a weak pattern", 3: "a pattern with exceptions", 4: "one clear pattern",
         5: "one clear, specific meaning"}


class RatingItem(NamedTuple):
    sae: str
    feature: int
    contexts: tuple[str, ...]


class SAEMean(NamedTuple):
    sae: str
    n_rated: int
    mean: float
    """nan when none of the SAE's features was rated."""


class BlindRating:
    """The rating session: items in a shuffled order, one rating (1-5) or skip each, and the reveal."""

    def __init__(self, items: Sequence[RatingItem]):
        if not items:
            raise ArgumentError("BlindRating needs at least one item; give each SAE some features to rate.")
        self.items = list(items)
        self.ratings: list[int | None] = []

    @classmethod
    def build(cls, saes: Mapping[str, tuple[Encoded, Sequence[int]]], show_context: Callable[[int], str],
              n_items: int = 12, top: int = 6, seed: int = 0) -> BlindRating:
        """Draw n_items (SAE, feature) pairs: each SAE in turn, so the SAEs get equal shares, then shuffled.

        saes: {name: (codes of the held-out tokens, the features to draw from)}; show_context(row) is the text
        around held-out token `row` (e.g. ``lambda r: lookup.show(meta.doc_id[r], meta.position[r])``)."""
        if n_items < 1 or top < 1:
            raise ArgumentError(f"n_items and top must be >= 1, got {n_items} and {top}.")
        pools = {name: list(features) for name, (_, features) in saes.items()}
        if not pools or any(not p for p in pools.values()):
            raise ArgumentError("every SAE needs a non-empty list of features to draw from.")
        rng = random.Random(seed)
        for pool in pools.values():
            rng.shuffle(pool)
        names, items = list(pools), []
        for i in range(n_items):
            name = names[i % len(names)]
            pool = pools[name]
            if not pool:
                continue
            feature = pool.pop()
            _, rows = top_activations(saes[name][0], feature, top)
            items.append(RatingItem(sae=name, feature=feature, contexts=tuple(show_context(r) for r in rows.tolist())))
        rng.shuffle(items)
        return cls(items)

    @property
    def position(self) -> int:
        """Index of the item now shown (== len(items) once all are rated)."""
        return len(self.ratings)

    @property
    def done(self) -> bool:
        return self.position >= len(self.items)

    def current(self) -> RatingItem:
        if self.done:
            raise OutOfRangeError("every feature is rated; call reveal().")
        return self.items[self.position]

    def rate(self, score: int | None) -> None:
        """Rate the current item 1-5 (see SCALE), or None to skip it."""
        if score is not None and score not in SCALE:
            raise ArgumentError(f"score must be one of 1-5 or None (skip), got {score!r}.")
        self.current()
        self.ratings.append(score)

    def reveal(self) -> list[SAEMean]:
        """Mean rating per SAE (alphabetical) over the items rated so far."""
        out = []
        for name in sorted({item.sae for item in self.items}):
            got = [r for item, r in zip(self.items, self.ratings) if item.sae == name and r is not None]
            out.append(SAEMean(sae=name, n_rated=len(got), mean=sum(got) / len(got) if got else float("nan")))
        return out

    def reveal_text(self) -> str:
        means = self.reveal()
        if not any(m.n_rated for m in means):
            return "No feature rated yet: rate a few, then reveal."
        lines = [f"{m.sae}: mean {m.mean:.2f} over {m.n_rated} rated" if m.n_rated else f"{m.sae}: none rated"
                 for m in means]
        lines += [f"  #{i + 1} was {item.sae} feature {item.feature}: "
                  f"{'skipped' if r is None else r}" for i, (item, r) in enumerate(zip(self.items, self.ratings))]
        return "\n".join(lines)


def _item_html(rating: BlindRating) -> str:
    if rating.done:
        return "<b>All rated.</b> Press <i>reveal</i>."
    item = rating.current()  # the SAE's name is never drawn here: the rating is blind
    rows = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in item.contexts)
    return (f"<b>Feature {rating.position + 1} of {len(rating.items)}</b>: its strongest activations, the token in "
            f"[[brackets]]<ol>{rows}</ol>")


def rating_widget(rating: BlindRating) -> widgets.VBox:
    """Buttons 1-5 and skip rate the shown feature; reveal prints the per-SAE means and which SAE each was."""
    view, result = widgets.HTML(_item_html(rating)), widgets.HTML()
    buttons = [widgets.Button(description=f"{s} {label}", layout=widgets.Layout(width="auto")) for s, label in
               SCALE.items()] + [widgets.Button(description="skip")]
    reveal = widgets.Button(description="reveal", button_style="info")

    def on_rate(button, score):
        if not rating.done:
            rating.rate(score)
        view.value = _item_html(rating)

    for score, button in zip([*SCALE, None], buttons):
        button.on_click(lambda b, s=score: on_rate(b, s))
    reveal.on_click(lambda _: setattr(result, "value", f"<pre>{html.escape(rating.reveal_text())}</pre>"))
    box = widgets.VBox([view, widgets.HBox(buttons), reveal, result])
    box.rating, box.view, box.result, box.buttons, box.reveal_button = rating, view, result, buttons, reveal
    return box
