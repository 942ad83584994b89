"""Sticky assignment of leads to A/B variants and to a campaign's holdout.

Pure functions. A lead's variant of a step is drawn from sha256 of the experiment id
(`<campaign>/<step>`) and the lead id, so it is the same in every tick, re-run and
simulation, and adding, removing or reordering other steps never changes it. The
holdout draw hashes `<campaign>/holdout` the same way, so it is independent of every
step's draw. Changing a step's weights re-weights only leads assigned afterwards:
touches already planned keep the variant they recorded (`touches.variant`).
"""

from __future__ import annotations

import hashlib

from leadops.delivery.campaigns import Campaign, Step

HOLDOUT = "holdout"  # enrollments.arm of a lead held out of its campaign


def unit_draw(experiment: str, lead_id: int) -> float:
    """A number in [0, 1) fixed by the experiment id and the lead id."""
    digest = hashlib.sha256(f"{experiment}:{lead_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def experiment_id(campaign: str, step: str) -> str:
    return f"{campaign}/{step}"


def variant_for(campaign: str, step: Step, lead_id: int) -> str | None:
    """The variant key of `step` this lead gets (None when the step has no variants)."""
    if not step.variants:
        return None
    total = sum(variant.weight for variant in step.variants)
    point = unit_draw(experiment_id(campaign, step.key), lead_id) * total
    for variant in step.variants:
        point -= variant.weight
        if point < 0:
            return variant.key
    return [variant.key for variant in step.variants if variant.weight][-1]


def arm_for(campaign: Campaign, lead_id: int) -> str | None:
    """`HOLDOUT` for a lead held out of `campaign`, else None (the lead gets the campaign)."""
    if campaign.holdout <= 0:
        return None
    return HOLDOUT if unit_draw(f"{campaign.key}/{HOLDOUT}", lead_id) < campaign.holdout else None
