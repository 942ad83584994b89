"""Routing on source and company size tier, and the performance-weighted round-robin
(pure: the routing decision and the weight factors, no database)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from leadops.sales.performance import PerformanceConfig, RepRecord, factors
from leadops.sales.routing import LeadProfile, Loads, RoutingConfig, route

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
ALWAYS = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri"]}
PERF = PerformanceConfig(enabled=True, min_sample=10, min_factor=0.5, max_factor=2.0)


def _config(*reps: dict[str, Any], **values: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "manager": {"name": "Manager", "email": "manager@northwind.example"},
            "fallback_queue": {"name": "Queue", "email": "queue@northwind.example"},
            "reps": [
                {"name": r["key"], "email": f"{r['key']}@n.example", "hours": ALWAYS} | r
                for r in reps
            ],
            **values,
        }
    )


def _lead(**values: Any) -> LeadProfile:
    return LeadProfile(account_domain=None, country=None, industry=None, language="en", **values)


def test_source_and_size_tier_rules_narrow_the_pool() -> None:
    routing = _config(
        {"key": "ana", "sources": ["Webinar"]},
        {"key": "ben", "size_tiers": ["enterprise"]},
        {"key": "cy"},
        rules=["source", "size_tier", "round_robin"],
        size_tiers={"smb": 1, "mid": 200, "enterprise": 1000},
    )
    assert routing.size_tier_of(5000) == "enterprise"
    assert routing.size_tier_of(200) == "mid"
    assert routing.size_tier_of(0) is None and routing.size_tier_of(None) is None
    nobody = Loads(open={}, recent={})
    webinar = route(routing, _lead(source="webinar"), now=NOW, loads=nobody)
    assert webinar.rep is not None and webinar.rep.key == "ana" and webinar.rule == "source"
    big = route(routing, _lead(size_tier="enterprise"), now=NOW, loads=nobody)
    assert big.rep is not None and big.rep.key == "ben" and big.rule == "size_tier"
    other = route(routing, _lead(source="referral", size_tier="smb"), now=NOW, loads=nobody)
    assert other.rule == "round_robin"


def test_a_rep_tier_must_be_configured() -> None:
    with pytest.raises(ValidationError, match=r"reps\.0\.size_tiers\.0"):
        _config({"key": "ana", "size_tiers": ["huge"]}, size_tiers={"smb": 1})
    with pytest.raises(ValidationError, match="max_factor"):
        PerformanceConfig.model_validate({"min_factor": 0.5, "max_factor": 0.9})


def test_factors_need_a_minimum_sample_and_stay_in_bounds() -> None:
    few = RepRecord(ack_minutes=(1.0,) * 9, won=9, lost=0)
    fast = RepRecord(ack_minutes=(5.0,) * 20, won=8, lost=12)
    slow = RepRecord(ack_minutes=(45.0,) * 20, won=2, lost=18)
    got = factors({"few": few, "fast": fast, "slow": slow}, PERF)
    assert got["few"].factor == 1.0 and got["few"].speed is None and got["few"].win is None
    assert "9/10 acks" in got["few"].note
    # team median ack 25 min (20 x 5, 20 x 45); team win rate 10/40 = 25%
    assert got["fast"].speed == pytest.approx(5.0) and got["fast"].win == pytest.approx(1.6)
    assert got["fast"].factor == 2.0 and "(bound)" in got["fast"].note
    assert got["slow"].speed == pytest.approx(25 / 45) and got["slow"].win == pytest.approx(0.4)
    assert got["slow"].factor == 0.5
    even = factors({"a": fast, "b": fast}, PERF)
    assert even["a"].factor == pytest.approx(1.0)


def test_assignments_shift_toward_the_faster_better_rep_within_bounds() -> None:
    """1,000 simulated escalations between two reps of equal configured weight: ana
    acknowledges in about 5 minutes and wins 40%, ben in about 40 and wins 10%. Their
    weights follow their record against the team's, so ana ends with more, but never
    beyond the bounds (at most 2x against 0.5x: 80% of the assignments)."""
    routing = _config({"key": "ana"}, {"key": "ben"}, performance=PERF.model_dump())
    rng = random.Random(25)
    acks: dict[str, list[float]] = {"ana": [], "ben": []}
    wins: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    assigned: Counter[str] = Counter()
    speed = {"ana": 5.0, "ben": 40.0}
    win_rate = {"ana": 0.4, "ben": 0.1}
    for _ in range(1000):
        records = {
            k: RepRecord(tuple(acks[k]), wins[k], closed[k] - wins[k]) for k in ("ana", "ben")
        }
        weights = factors(records, PERF)
        assert all(0.5 <= f.factor <= 2.0 for f in weights.values())
        loads = Loads(open={}, recent=dict(assigned), performance=weights)
        decision = route(routing, _lead(), now=NOW, loads=loads)
        assert decision.rep is not None
        key = decision.rep.key
        assert "performance weights" in decision.detail
        assigned[key] += 1
        acks[key].append(rng.expovariate(1 / speed[key]))
        closed[key] += 1
        wins[key] += rng.random() < win_rate[key]
    share = assigned["ana"] / 1000
    assert 0.6 < share <= 0.8 + 0.002  # toward ana, within 2x / (2x + 0.5x)
    final = factors(
        {k: RepRecord(tuple(acks[k]), wins[k], closed[k] - wins[k]) for k in acks}, PERF
    )
    assert 1.0 < final["ana"].factor <= 2.0 and 0.5 <= final["ben"].factor < 1.0


def test_without_performance_weighting_the_split_follows_configured_weights() -> None:
    routing = _config({"key": "ana"}, {"key": "ben"})
    assigned: Counter[str] = Counter()
    for _ in range(100):
        decision = route(routing, _lead(), now=NOW, loads=Loads(open={}, recent=dict(assigned)))
        assert decision.rep is not None and "performance" not in decision.detail
        assigned[decision.rep.key] += 1
    assert assigned == {"ana": 50, "ben": 50}
