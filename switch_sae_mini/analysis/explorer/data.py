"""Everything the expert explorer shows, precomputed once (``ExplorerData.build``), then read per interaction.

Building encodes an in-order activation set with every SAE, finds decoder neighbours and feature statistics
(a tqdm bar shows progress). After that each ``*_view`` method answers one widget interaction from the
precomputed tensors plus one analysis function, in milliseconds at the notebook's sizes; only ``text_view``
runs the language model, on the typed text alone.

Example::

    data = ExplorerData.build(model, {"E=8": sae8, "E=32": sae32}, n_tokens=20_000)
    data.expert_view("E=8", expert=3).top_tokens      # [(token text, count, lift), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ... import analysis
from ...data.reading import HookReader
from ...errors import ArgumentError, UnknownNameError
from ...saes.metrics import expert_share

DOMAIN_LABELS = {"shakespeare": "Shakespeare", "python_docs": "Python docs", "bible": "Bible"}


@dataclass
class SAEView:
    """One Switch SAE and its precomputed statistics on the explorer's activation set."""

    name: str
    sae: torch.nn.Module
    codes: analysis.Encoded
    neighbours: analysis.NearestNeighbours
    stats: analysis.FeatureStats
    usage: Tensor  # [n_experts] share of tokens
    profile: Tensor  # [n_experts, n_domains] domain mix of each expert's tokens

    @property
    def n_experts(self) -> int:
        return int(self.sae.cfg.n_experts)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)


class ExpertView(NamedTuple):
    expert: int
    share: float
    profile: dict[str, float]  # domain label -> share of the expert's tokens
    top_tokens: list[tuple[str, int, float]]  # (token text, count, lift)
    top_features: list[analysis.FeatureSummary]


class FeatureView(NamedTuple):
    feature: int
    expert: int
    frequency: float
    contexts: list[tuple[list[str], list[float], int]]  # (tokens, activations, index of the peak token)
    hist_counts: Tensor
    hist_edges: Tensor
    neighbours: list[analysis.Neighbour]
    promoted: list[str]
    suppressed: list[str]


@dataclass
class ExplorerData:
    """Precomputed explorer state for one or more Switch SAEs sharing a model, hook and activation set."""

    saes: dict[str, SAEView]
    meta: object  # activations.TokenMetadata of the in-order activation set
    domains: tuple[str, ...]
    reader: object  # activations.HookReader, reused to route typed text
    W_U: Tensor  # [d_model, vocab] unembedding, for logit effects
    _token_text: dict[int, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, model, saes, n_tokens: int = 20_000, source="bundled", split: str = "validation",
              contexts_per_doc: int = 4, hook: str | None = None, progress: bool = True) -> ExplorerData:
        """Harvest ``n_tokens`` in document order (held-out ``split`` by default) and precompute per SAE.

        saes: a Switch SAE or a dict {name: SAE}; all must read ``hook`` (default: the model's). TopK SAEs (such as
        one imported with ``load_saelens``) are shown as a single expert.
        """

        saes = saes if isinstance(saes, dict) else {"SAE": saes}
        if not saes:
            raise ArgumentError("saes is empty; pass a Switch SAE or a dict {name: Switch SAE}.")
        reader = HookReader(model, hook)
        for name, sae in saes.items():
            if getattr(getattr(sae, "cfg", None), "arch", None) not in ("switch", "topk"):
                raise ArgumentError(f"saes[{name!r}] is not a Switch or TopK SAE (cfg.arch must be 'switch' or "
                                    "'topk'; a ReLU SAE's codes are dense). A TopK SAE shows as one expert.")
            if sae.cfg.shared_expert or sae.cfg.router_top_e > 1:
                raise ArgumentError(f"saes[{name!r}] has shared_expert={sae.cfg.shared_expert} and router_top_e="
                                    f"{sae.cfg.router_top_e}; the explorer shows SAEs with one routed expert per "
                                    f"token and no shared expert (plain Switch or TopK).")
            if sae.cfg.d_in != reader.d_in:
                raise ArgumentError(f"saes[{name!r}] has d_in={sae.cfg.d_in} but hook {reader.hook!r} gives "
                                 f"d_in={reader.d_in}; pass hook= the SAE was trained on.")
        with tqdm(total=1 + 3 * len(saes), desc="explorer: precomputing", disable=not progress) as bar:
            bar.set_postfix_str("harvesting")
            data = analysis.harvest_in_order(model, n_tokens, source=source, split=split, hook=reader.hook,
                                            contexts_per_doc=contexts_per_doc, progress=False)
            bar.update()
            views = {}
            for name, sae in saes.items():
                bar.set_postfix_str(f"{name}: encoding")
                codes = analysis.encode_all(sae, data.acts.to(sae.W_dec.device))
                codes = analysis.Encoded._make(None if t is None else t.cpu() for t in codes)
                if codes.expert_idx is None:  # a TopK SAE (e.g. imported from SAELens): one expert holding all
                    n = len(codes.latent_idx)
                    codes = codes._replace(expert_idx=torch.zeros(n, dtype=torch.long), router_prob=torch.ones(n))
                bar.update()
                bar.set_postfix_str(f"{name}: decoder neighbours")
                E = int(sae.cfg.n_experts)
                neighbours = analysis.decoder_neighbours(sae.W_dec.detach().cpu(), E)
                bar.update()
                usage = expert_share(codes.expert_idx, E)
                profile = analysis.domain_profile(codes.expert_idx, data.meta.domain, E, len(data.domains))
                stats = analysis.feature_stats(codes, sae.cfg.d_sae)
                views[name] = SAEView(name, sae, codes, neighbours, stats, usage, profile)
                bar.update()
        W_U = model.W_U.detach().float().cpu()
        return cls(views, data.meta, data.domains, reader, W_U)

    # -- helpers --------------------------------------------------------------------------------------------
    def view(self, name: str) -> SAEView:
        if name not in self.saes:
            raise UnknownNameError(f"no SAE named {name!r}; choose one of {list(self.saes)}.")
        return self.saes[name]

    def token_text(self, token_id: int) -> str:
        """Decoded text of one token (cached: decoding is the slowest part of a context view)."""
        token_id = int(token_id)
        if token_id not in self._token_text:
            self._token_text[token_id] = self.reader.model.tokenizer.decode([token_id])
        return self._token_text[token_id]

    def domain_labels(self) -> list[str]:
        return [DOMAIN_LABELS.get(d, d) for d in self.domains]

    # -- one method per interaction -------------------------------------------------------------------------
    def expert_view(self, name: str, expert: int, top: int = 10) -> ExpertView:
        v = self.view(name)
        if not 0 <= expert < v.n_experts:
            raise ArgumentError(f"expert={expert} is outside 0..{v.n_experts - 1} for SAE {name!r}.")
        tokens = analysis.top_tokens_per_expert(v.codes.expert_idx, self.meta.token_id, expert, top=top)
        return ExpertView(expert, float(v.usage[expert]),
                          dict(zip(self.domain_labels(), v.profile[expert].tolist())),
                          [(self.token_text(t), c, lift) for t, c, lift in tokens],
                          analysis.expert_top_features(v.stats, expert, v.n_experts, top))

    def feature_view(self, name: str, feature: int, top: int = 6, left: int = 10, right: int = 4,
                     bins: int = 20) -> FeatureView:
        v = self.view(name)
        if not 0 <= feature < v.d_sae:
            raise ArgumentError(f"feature={feature} is outside 0..{v.d_sae - 1} for SAE {name!r}.")
        acts = analysis.feature_activations(v.codes, feature)
        _, rows = analysis.top_activations(v.codes, feature, top=top)
        contexts = []
        for row in rows.tolist():
            window = analysis.context_rows(self.meta.doc_id, self.meta.position, row, left, right)
            token_ids = self.meta.token_id[window.start:window.stop].tolist()
            contexts.append(([self.token_text(t) for t in token_ids], acts[window.start:window.stop].tolist(),
                             row - window.start))
        counts, edges = analysis.activation_histogram(acts, bins)
        direction = v.sae.W_dec[feature].detach().cpu()
        up, down = analysis.logit_effect(direction, self.W_U, top=8)
        return FeatureView(feature, analysis.expert_of_feature(feature, v.d_sae, v.n_experts),
                           float(v.stats.frequency[feature]), contexts, counts, edges,
                           analysis.feature_neighbours(v.sae.W_dec.detach().cpu(), feature, v.n_experts),
                           [self.token_text(t) for t in up], [self.token_text(t) for t in down])

    def text_view(self, name: str, text: str, top_features: int = 3) -> tuple[list[str], analysis.TextRouting]:
        routing = analysis.route_text(self.reader, self.view(name).sae, text, top_features)
        return [self.token_text(t) for t in routing.token_ids], routing

    def duplication_view(self, name: str, threshold: float = 0.9) -> analysis.DuplicationStats:
        v = self.view(name)
        return analysis.duplication_stats(v.neighbours, v.n_experts, threshold)
