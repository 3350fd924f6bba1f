"""Analysis of trained SAEs: features (codes, firing statistics, top activations), experts (who gets which tokens),
decoder geometry (neighbours, duplicates), interpretability scores (detection, purity), text contexts, plots,
and the expert explorer app (explorer/, with the blind feature rating).
"""

from .contexts import (
                       ContextLookup,
                       InOrderActivations,
                       TextRouting,
                       context_rows,
                       harvest_in_order,
                       route_text,
)
from .controls import (
                       DuplicateRow,
                       NeighbourShare,
                       cross_block_cosine,
                       cross_block_duplicate_fraction,
                       duplicate_verdict,
                       duplicates_with_control,
                       geometry_verdict,
                       random_blocks,
                       same_expert_neighbours,
)
from .detection import DetectionRule, DetectionScore, apply_rule, detection_score, fit_rule, previous_token_ids
from .experts import domain_profile, specialisation, top_tokens_per_expert
from .features import (
                       Encoded,
                       FeatureStats,
                       FeatureSummary,
                       activation_histogram,
                       concat_codes,
                       encode_all,
                       expert_of_feature,
                       expert_top_features,
                       feature_activations,
                       feature_stats,
                       logit_effect,
                       top_activations,
)
from .geometry import (
                       DuplicationStats,
                       NearestNeighbours,
                       Neighbour,
                       cosine_neighbours,
                       decoder_neighbours,
                       duplicate_fraction,
                       duplication_stats,
                       expert_cluster_gap,
                       feature_neighbours,
                       inter_expert_similarity,
                       is_duplicate,
                       pca_2d,
                       tsne_2d,
)
from .interpretability import (
                       FeatureScore,
                       Summary,
                       interpretability_verdict,
                       sample_by_band,
                       score_features,
                       summarise,
                       top_purity,
)
from .variants import RoutedDuplicates, SharedExpertUse, routed_duplicates, shared_expert_use, shared_expert_verdict

__all__ = [
    "ContextLookup", "DuplicateRow", "DuplicationStats", "NeighbourShare", "cross_block_cosine",
    "cross_block_duplicate_fraction",
    "duplicate_verdict", "duplicates_with_control", "geometry_verdict", "random_blocks", "same_expert_neighbours",
    "tsne_2d", "Encoded", "FeatureStats", "FeatureSummary", "InOrderActivations",
    "NearestNeighbours", "Neighbour", "TextRouting", "activation_histogram", "concat_codes", "context_rows",
    "cosine_neighbours", "decoder_neighbours", "domain_profile", "duplicate_fraction", "duplication_stats",
    "encode_all", "expert_cluster_gap", "expert_of_feature", "expert_top_features", "feature_activations",
    "feature_neighbours", "feature_stats", "harvest_in_order", "inter_expert_similarity", "is_duplicate",
    "logit_effect", "pca_2d", "route_text", "specialisation", "top_activations", "top_tokens_per_expert",
    "RoutedDuplicates", "SharedExpertUse", "routed_duplicates", "shared_expert_use", "shared_expert_verdict",
    "DetectionRule", "DetectionScore", "apply_rule", "detection_score", "fit_rule", "previous_token_ids",
    "FeatureScore", "Summary", "interpretability_verdict", "sample_by_band", "score_features", "summarise",
    "top_purity",
]
