"""The revenue KPIs as the tables `leadops report`, the report flow and the HTML page
show (leadops.reporting.revenue computes them)."""

from __future__ import annotations

from typing import Any

from leadops.reporting.kpi_figures import KpiReport


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def revenue_rows(report: KpiReport) -> list[dict[str, str]]:
    """The revenue headline as (figure, value, note) rows."""
    r, money = report.revenue, report.currency
    other = f"; {r.won_other_currency} in another currency" if r.won_other_currency else ""
    return [
        {
            "figure": "won customers",
            "value": str(r.won_customers),
            "note": f"{r.won_deals} won deal(s); basis: CRM {r.won_basis_crm}, "
            f"rep's closed-won escalation {r.won_basis_escalation}",
        },
        {
            "figure": f"won amount ({money})",
            "value": _num(r.won_amount_total, 2),
            "note": f"average deal size {_num(r.won_amount_average, 2)}"
            + (f"; {r.won_without_amount} without an amount" if r.won_without_amount else "")
            + other,
        },
        {
            "figure": "sales cycle (lead created to won)",
            "value": f"{_num(r.cycle_median_days)} d median",
            "note": f"p90 {_num(r.cycle_p90_days)} d",
        },
        {
            "figure": "touches before conversion",
            "value": f"{_num(r.touches_before_handoff_avg)} avg before the hand-off",
            "note": f"median {_num(r.touches_before_handoff_median)}; "
            f"{_num(r.touches_before_win_avg)} avg before the win (messages sent)",
        },
        {
            "figure": "nurture conversion to customer",
            "value": _pct(r.nurture_customer_conversion),
            "note": f"{r.nurture_customers} of {r.nurture_enrolled} enrolled leads became "
            "customers",
        },
    ]


def source_revenue_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "source": s.source,
            "leads": s.leads,
            "customers": s.customers,
            "won amount": _num(s.won_amount, 2),
            "cost per lead": _num(s.cost_per_lead, 2),
            "cost per sale": _num(s.cost_per_sale, 2),
            "average deal": _num(s.average_deal, 2),
            "lifetime value": _num(s.lifetime_value, 2),
            "ROI": _pct(s.roi),
        }
        for s in report.revenue_by_source
    ]


def campaign_revenue_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "campaign": c.campaign,
            "enrolled": c.enrolled,
            "customers": c.customers,
            "to customer": _pct(c.customer_conversion),
            "won amount (in full)": _num(c.won_amount, 2),
            "won amount (split)": _num(c.won_amount_split, 2),
        }
        for c in report.revenue_by_campaign
    ]


def velocity_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "month": m.month + (" (so far)" if m.partial else ""),
            "qualified leads": m.qualified,
            "lead velocity rate": _pct(m.growth_rate),
        }
        for m in report.lead_velocity
    ]
