"""The scale bench's section of docs/PERFORMANCE.md."""

from __future__ import annotations

import os
from typing import Any

from bench.report import machine_line
from leadops.core.settings import Settings
from leadops.nurture.plan import PLAN_BATCH

CHUNK = Settings.model_fields["dispatch_chunk_size"].default


def _growth(small: dict[str, Any], large: dict[str, Any], key: str) -> str:
    return f"x{large[key] / small[key]:.2f}"


def render(
    sizes: list[dict[str, Any]],
    floor: float,
    messages: int,
    fault: dict[str, Any] | None,
    *,
    concurrency: int,
    validate_every: int,
) -> str:
    rows = [  # label, cell, the key growth is worked out on (None: no growth)
        ("COPY seed", lambda s: f"{s['seed_s']:.1f} s", None),
        (
            "plan all leads (one nurture tick, one worker)",
            lambda s: f"{s['plan_s']:.1f} s",
            "plan_s",
        ),
        ("planning rate, one worker", lambda s: f"{s['plan_rate']:,.0f} leads/s", "plan_rate"),
        ("planner CPU (user + system)", lambda s: f"{s['plan_cpu_s']:.1f} s", "plan_cpu_s"),
        ("planner CPU per lead", lambda s: f"{s['plan_cpu_us']:.0f} µs", "plan_cpu_us"),
        (
            "PostgreSQL CPU for the tick (its backends)",
            lambda s: f"{s['plan_server_cpu_s']:.1f} s",
            "plan_server_cpu_s",
        ),
        ("COPY of the rows the tick wrote (floor)", lambda s: f"{s['plan_floor_s']:.1f} s", None),
        ("plan / COPY floor", lambda s: f"x{s['plan_over_floor']:.1f}", "plan_over_floor"),
        (
            "plan all leads, two workers (partitions 0/2, 1/2)",
            lambda s: f"{s['plan2_s']:.1f} s",
            "plan2_s",
        ),
        (
            "PostgreSQL checkpoints during the one-worker tick",
            lambda s: f"{s['plan_checkpoints']}",
            None,
        ),
        ("planner peak RSS", lambda s: f"{s['plan_rss_mb']:.0f} MB", "plan_rss_mb"),
        (
            f"dispatch, 1 worker ({messages:,} msgs)",
            lambda s: f"{s['dispatch_1']:,.0f} msg/s",
            "dispatch_1",
        ),
        (
            f"dispatch, 2 workers ({messages:,} msgs)",
            lambda s: f"{s['dispatch_2']:,.0f} msg/s",
            "dispatch_2",
        ),
        (
            "dispatcher CPU per message, 1 worker",
            lambda s: f"{s['dispatch_cpu_1']:.2f} ms",
            "dispatch_cpu_1",
        ),
        (
            "dispatcher CPU per message, 2 workers",
            lambda s: f"{s['dispatch_cpu_2']:.2f} ms",
            "dispatch_cpu_2",
        ),
        ("dispatcher peak RSS", lambda s: f"{s['dispatch_rss_mb']:.0f} MB", "dispatch_rss_mb"),
    ]
    header = "| measure | " + " | ".join(f"{s['leads']:,} leads" for s in sizes)
    growth = len(sizes) == 2
    header += " | growth |" if growth else " |"
    lines = [header, "|---" * (len(sizes) + 1 + growth) + "|"]
    for label, show, key in rows:
        cells = [show(s) for s in sizes]
        if growth:
            cells.append(_growth(sizes[0], sizes[1], key) if key else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| raw HTTP floor (one keep-alive client, same fake) | {floor:,.0f} msg/s |")
    text = "\n".join(lines)
    largest = sizes[-1]
    marks = largest.get("plan_marks") or []
    if len(marks) >= 2:
        laps = [b[1] - a[1] for a, b in zip([(0, 0.0), *marks], marks, strict=False)]
        text += (
            f"\n\nWithin the one-worker tick of {largest['leads']:,} leads, each 100,000 leads "
            f"took (s): {', '.join(f'{lap:.1f}' for lap in laps)}; the last over the first: "
            f"x{laps[-1] / laps[0]:.2f} (flat means linear, whatever the machine's speed "
            "between the two sizes)."
        )
    fault_text = "Fault run not measured (--no-fault, or it did not finish)."
    if fault is not None:
        check = fault["check"]
        statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(check.statuses.items()))
        restart = (
            f"PostgreSQL restarted (pg_ctlcluster) after {fault['restart_at']:,} accepted"
            if fault["restart_problem"] is None
            else f"PostgreSQL NOT restarted ({fault['restart_problem']}) after "
            f"{fault['restart_at']:,} accepted"
        )
        fault_text = (
            f"Fault run: {fault['touches']:,} touches, two dispatcher processes; one SIGKILLed "
            f"after {fault['killed_at']:,} messages accepted by the fake; {restart}; the "
            f"other dispatcher ended with {fault['second_ended']}; {fault['rounds']} more "
            f"round(s) of two dispatchers after the leases expired; {fault['seconds']:.0f} s. "
            f"Outcome: {statuses}; duplicates at the provider: {len(check.duplicates)}; "
            f"problems (lost, left open, mismatched): {len(check.problems)}"
            + (f" ({'; '.join(check.problems[:3])})" if check.problems else "")
            + "."
        )
    return f"""
## Scale (PostgreSQL, many workers)

{machine_line()} Load average {os.getloadavg()[0]:.1f} at the end (the machine is shared).
PostgreSQL on the same 2 cores as the workers and the fake provider.

Leads are COPYed into a scratch database; one planner process runs one nurture tick
(`plan_all`: segment, enroll, create the day-1 touch of every lead, in batches of
{PLAN_BATCH:,}); its floor is COPYing the enrollments and touches it wrote into empty tables
like theirs (same columns and indexes, no foreign keys), and its CPU is the planner
process's own (PostgreSQL's is not in it);
the same tick is also run (on fresh copies of the leads) by two planner processes at
once, each a partition (lead id modulo 2), as two workers on one pool would.
Then {messages:,} of those touches are sent by one dispatcher process, and {messages:,}
more by two at once (`run_dispatch`, claims with FOR UPDATE SKIP LOCKED, SendGrid channel,
{concurrency} threads each, default chunks of {CHUNK}) to the SendGrid fake in its own process
(asyncio, validating every {validate_every}th request against the OpenAPI file). Rates are
messages / (last worker end - first worker start); CPU per message is the workers' own
user + system time over the messages sent (the fake and PostgreSQL use the same 2 cores
besides); peak RSS from getrusage in each worker. Growth is the 1M figure divided by the
100k one (for times, x10 is linear).

{text}

{fault_text}
"""
