"""`leadops model`: train, show and switch the predictive score; synthesize a history
with a known truth to try it on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NoPrefectOption,
    NowOption,
    _engine,
    _instant,
    _settings,
    console,
)
from leadops.cli.output import Format, emit, emit_sections

model_app = typer.Typer(
    help="The predictive score: train it, read its model card, switch its mode.",
    no_args_is_help=True,
)


def _card_sections(card: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from leadops.predictive import card as cards

    return {
        "model_card": cards.summary_rows(card),
        "backtest": cards.comparison_rows(card),
        "calibration": cards.calibration_rows(card),
        "coefficients": card.get("coefficients") or [],
    }


def _print_card(card: dict[str, Any], fmt: Format) -> None:
    if fmt == Format.JSON:
        from leadops.cli.output import print_json

        print_json(card)
        return
    emit_sections(
        _card_sections(card), fmt, columns={"backtest": ["score"], "coefficients": ["column"]}
    )


@model_app.command("train")
def model_train(
    now: NowOption = None,
    no_prefect: NoPrefectOption = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Train the predictive model on this database's history (config/predictive.yaml:
    label, window, gate), backtest it against the rule score, store it (shadow mode the
    first time) and score every lead; prints the model card (the weekly flow does the
    same). --format json gives the card as one object.

    Example: leadops model train --no-prefect --now 2026-12-01T00:00Z
    """
    settings = _settings()
    at = _instant(now)
    if no_prefect:
        from leadops.predictive.run import train_and_score

        result = train_and_score(_engine(settings), settings.config_dir, at)
    else:
        from flows.predict import predict_flow

        _engine(settings)
        predict_flow(now=at)
        from leadops.predictive.card import model_card
        from leadops.predictive.config import load_predictive

        with _engine(settings).connect() as connection:
            card = model_card(connection, load_predictive(settings.config_dir))
        result = {"card": card}
    _print_card(result["card"], fmt)


@model_app.command("show")
def model_show(fmt: FormatOption = Format.TABLE) -> None:
    """The model card of the latest model: version, label and window, training window,
    the gate, the mode, and the backtest (AUC, top-decile lift, Brier, calibration by
    decile) of the model and of the rule score on the same leads. --format json gives
    it as one object, numbers as numbers.

    Example: leadops model show --format json
    """
    from leadops.predictive.card import model_card
    from leadops.predictive.config import load_predictive

    settings = _settings()
    with _engine(settings).connect() as connection:
        card = model_card(connection, load_predictive(settings.config_dir))
    _print_card(card, fmt)


@model_app.command("mode")
def model_mode(
    mode: Annotated[str, typer.Argument(help="off, shadow or active.")],
    now: NowOption = None,
) -> None:
    """Switch the latest model: off (not scored), shadow (scored and reported, not used)
    or active (its probability sets each lead's band, and so band routing). Active is
    refused unless the stored backtest beats the rule score. Every lead is rescored (or,
    leaving active, given back its band from its grade).

    Example: leadops model mode active
    """
    from leadops.engagement.grading import grade_leads
    from leadops.engagement.scoring import load_scoring
    from leadops.models import LEADS
    from leadops.predictive.config import Mode
    from leadops.predictive.store import ModeError, score_leads, set_mode

    try:
        wanted = Mode(mode)
    except ValueError as exc:
        raise CliError(f"mode {mode!r}: expected off, shadow or active") from exc
    settings = _settings()
    engine = _engine(settings)
    at = _instant(now)
    with engine.begin() as connection:
        try:
            model = set_mode(connection, wanted, at)
        except ModeError as exc:
            raise CliError(str(exc)) from exc
    if wanted != Mode.ACTIVE:
        scoring = load_scoring(settings.config_dir)
        with engine.connect() as connection:
            ids = list(connection.execute(sa.select(LEADS.c.id)).scalars())
        for start in range(0, len(ids), 5000):
            with engine.begin() as connection:
                grade_leads(connection, scoring, ids[start : start + 5000])
    scored = score_leads(engine, None, at)
    console.print(
        f"model v{model.version} is {model.mode}; {scored.leads} leads scored"
        + (f", {scored.bands_set} bands set from the probability" if scored.bands_set else ""),
        highlight=False,
    )


@model_app.command("synthesize")
def model_synthesize(
    leads: Annotated[int, typer.Option("--leads", min=100, help="How many leads.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="The random seed.")] = 26,
    end: Annotated[
        str | None, typer.Option("--end", help="The history's last day (ISO 8601).")
    ] = None,
    independent: Annotated[
        bool, typer.Option("--independent", help="Outcomes independent of every feature.")
    ] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Fill the database with a synthetic history whose truth is known (docs/guides/
    predictive.md lists its parameters): 12 months of leads, about 8% accepted by a rep,
    seniority and pricing-page visits each doubling the odds, three noise features, and a
    rule score over-weighting one of them. For a demo or a trial database only.

    Example: leadops model synthesize --end 2026-12-01T00:00Z
    """
    from leadops.models import LEADS
    from leadops.predictive.synthetic import END, synthesize

    engine = _engine(_settings())
    with engine.connect() as connection:
        taken = connection.execute(
            sa.select(LEADS.c.id).where(LEADS.c.source == "synthetic").limit(1)
        ).first()
    if taken is not None:
        raise CliError("this database holds a synthetic history already; use a new database")
    at: datetime = _instant(end) if end else END
    made = synthesize(engine, leads=leads, end=at, seed=seed, independent=independent)
    row = {
        "leads": made.leads,
        "positives": made.positives,
        "inbox_rows": made.inbox_rows,
        "start": made.start,
        "end": made.end,
        "independent": made.independent,
    }
    emit([row], list(row), fmt, title="Synthetic history")
