"""Theory of BBPM: slot occupancy and collisions (:mod:`collision_model`), read fidelity
(mean cosine, spread, share above a threshold, tail bounds: :mod:`snr_bounds`), and small
measurements that check both against the real memory (:mod:`sanity_checks`)."""

from bbpm.theory import collision_model, read_rules, sanity_checks, snr_bounds
from bbpm.theory.collision_model import (
    expected_load_histogram,
    expected_max_load,
    expected_occupied_fraction,
    expected_q2_estimate,
    key_overlap_statistics,
    occupancy_prediction,
    pairwise_collision_probability,
    prob_slot_shared,
)
from bbpm.theory.snr_bounds import (
    cosine_given_hash,
    cosine_std,
    exact_share,
    expected_cosine,
    high_load_cosine,
    load_moments,
    predict,
    prototype_guess,
    share_above,
    share_below_bound,
)

__all__ = [
    "collision_model",
    "cosine_given_hash",
    "cosine_std",
    "exact_share",
    "expected_cosine",
    "expected_load_histogram",
    "expected_max_load",
    "expected_occupied_fraction",
    "expected_q2_estimate",
    "high_load_cosine",
    "key_overlap_statistics",
    "load_moments",
    "occupancy_prediction",
    "pairwise_collision_probability",
    "predict",
    "prob_slot_shared",
    "prototype_guess",
    "read_rules",
    "sanity_checks",
    "share_above",
    "share_below_bound",
    "snr_bounds",
]
