"""Try segment rules (config/segments.yaml or a draft) on the leads as they are now.

Reads only: nothing is sent or written. For each rule: how many leads its conditions
match (`matches`, whatever the order) and how many it would take (`chosen`: first match
wins, as planning does), with examples; and for leads already enrolled, whether the rules
would keep them in their campaign, move them to another or end their enrollment.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from leadops.models import ENROLLMENTS, LEADS, EnrollmentStatus
from leadops.nurture.segments import LeadFacts, SegmentConfig, choose_rule, first_forms, mismatch

EXAMPLES = 3
BATCH = 1000
NO_RULE = "(no rule)"


@dataclass
class RuleCount:
    segment: str
    campaign: str
    matches: int = 0
    chosen: int = 0
    examples: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "campaign": self.campaign,
            "matches": self.matches,
            "chosen": self.chosen,
            "examples": ", ".join(self.examples),
        }


@dataclass
class SegmentCheck:
    now: datetime
    leads: int = 0
    rules: list[RuleCount] = field(default_factory=list)
    # (change, from campaign, to campaign) -> leads, for leads with an active enrollment
    enrolled: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    enrolled_examples: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def rule_rows(self) -> list[dict[str, Any]]:
        return [rule.row() for rule in self.rules]

    def enrolled_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "change": change,
                "from_campaign": old,
                "to_campaign": new,
                "leads": n,
                "examples": ", ".join(self.enrolled_examples[(change, old, new)]),
            }
            for (change, old, new), n in sorted(self.enrolled.items())
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "leads": self.leads,
            "rules": self.rule_rows(),
            "enrolled": self.enrolled_rows(),
        }


def _example(lead: Any) -> str:
    return f"{lead.email} ({lead.id})" if lead.email else f"lead {lead.id}"


def _add_example(examples: list[str], lead: Any) -> None:
    if len(examples) < EXAMPLES:
        examples.append(_example(lead))


def check_segments(session: Session, config: SegmentConfig, now: datetime) -> SegmentCheck:
    """What `config` would do to every lead at `now`, without writing anything."""
    report = SegmentCheck(now=now)
    report.rules = [RuleCount(rule.segment, rule.campaign) for rule in config.rules]
    unmatched = RuleCount(NO_RULE, "-")
    by_segment = {count.segment: count for count in report.rules}
    last_id = 0
    while True:
        leads = session.execute(
            select(LEADS).where(LEADS.c.id > last_id).order_by(LEADS.c.id).limit(BATCH)
        ).all()
        if not leads:
            break
        last_id = leads[-1].id
        ids = [lead.id for lead in leads]
        forms = first_forms(session, ids)
        active: dict[int, str] = {
            lead_id: campaign
            for lead_id, campaign in session.execute(
                select(ENROLLMENTS.c.lead_id, ENROLLMENTS.c.campaign).where(
                    ENROLLMENTS.c.lead_id.in_(ids), ENROLLMENTS.c.status == EnrollmentStatus.ACTIVE
                )
            ).all()
        }
        for lead in leads:
            report.leads += 1
            facts = LeadFacts.of(lead, forms.get(lead.id))
            for tried, count in zip(config.rules, report.rules, strict=True):
                if mismatch(tried.when, facts, now) is None:
                    count.matches += 1
            campaign = active.get(lead.id)
            rule = choose_rule(config, facts, now, active_campaign=campaign)
            chosen = unmatched if rule is None else by_segment[rule.segment]
            chosen.chosen += 1
            _add_example(chosen.examples, lead)
            if campaign is not None:
                _count_change(report, lead, campaign, None if rule is None else rule.campaign)
    if unmatched.chosen:
        report.rules.append(unmatched)
    return report


def _count_change(report: SegmentCheck, lead: Any, old: str, new: str | None) -> None:
    """Count what the rules would do to an enrolled lead's campaign."""
    if new == old:
        key = ("unchanged", old, old)
    elif new is None:
        key = ("would leave", old, "-")
    else:
        key = ("would move", old, new)
    report.enrolled[key] += 1
    _add_example(report.enrolled_examples.setdefault(key, []), lead)
