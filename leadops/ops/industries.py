"""The doctor's industries check: every industry that scoring.yaml, segments.yaml or
routing.yaml names is one config/intake.yaml lists (by its name or an alias), since
imports store leads under those names and a rule naming another never matches."""

from __future__ import annotations

from leadops.core.configfile import ConfigError
from leadops.intake.mapping import Industries, scoring_rules
from leadops.ops.check import Check, Status
from leadops.runtime import Runtime
from leadops.sales.runtime import routing_path

SHOWN = 5  # unknown industries named in the detail; the rest are counted


def named_industries(runtime: Runtime) -> list[tuple[str, str]]:
    """(where, industry) for each industry the scoring, segment and routing files name.

    A file that does not load is left out: its own check (or command) reports it."""
    config_dir = runtime.settings.config_dir
    named: list[tuple[str, str]] = []
    try:
        scoring = scoring_rules(config_dir)
    except (ConfigError, OSError):
        scoring = None
    for fit in scoring.fit if scoring is not None else ():
        for industry in fit.when.industry or ():
            named.append((f"scoring.yaml fit rule {fit.rule}", industry))
    try:
        rules = runtime.segments.rules
    except (ConfigError, OSError):
        rules = ()
    for rule in rules:
        for industry in rule.when.industry or ():
            named.append((f"segments.yaml segment {rule.segment}", industry))
    try:  # without routing.yaml there are no reps (and nothing to log: escalation is off)
        routing = runtime.routing if routing_path(runtime.settings).exists() else None
    except (ConfigError, OSError):
        routing = None
    for rep in routing.reps if routing is not None else ():
        for industry in rep.industries:
            named.append((f"routing.yaml rep {rep.key}", industry))
    return named


def check_industries(runtime: Runtime) -> list[Check]:
    """Warn about each industry named in the rules that intake.yaml does not list."""
    try:
        intake = runtime.intake
    except (ConfigError, OSError) as exc:
        return [Check("industries", Status.FAIL, str(exc), "fix config/intake.yaml")]
    if not intake.industries:
        return [
            Check(
                "industries",
                Status.OK,
                "config/intake.yaml lists no industries: leads keep them as sources give them",
            )
        ]
    known = Industries.of(intake)
    named = named_industries(runtime)
    unknown = [(where, industry) for where, industry in named if known.name(industry) is None]
    if not unknown:
        return [
            Check(
                "industries",
                Status.OK,
                f"all {len(named)} industries the rules name are listed in config/intake.yaml",
            )
        ]
    shown = "; ".join(f"{where}: {industry!r}" for where, industry in unknown[:SHOWN])
    more = f" (+{len(unknown) - SHOWN} more)" if len(unknown) > SHOWN else ""
    return [
        Check(
            "industries",
            Status.WARN,
            f"not in the industries of config/intake.yaml, so no imported lead has them: "
            f"{shown}{more}",
            "use the industry's name from config/intake.yaml, or add it (or an alias) there",
        )
    ]
