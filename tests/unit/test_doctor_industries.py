"""The doctor's industries check: rules that name an industry intake.yaml does not list."""

from __future__ import annotations

import shutil
from pathlib import Path

from leadops.ops.check import Status
from leadops.ops.industries import check_industries
from leadops.runtime import build_runtime
from tests.conftest import ROOT, make_settings


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    return config


def _check(tmp_path: Path, config: Path) -> tuple[Status, str]:
    (check,) = check_industries(build_runtime(make_settings(tmp_path, config_dir=config)))
    return check.status, check.detail


def test_the_shipped_rules_name_only_listed_industries_or_aliases(tmp_path: Path) -> None:
    status, detail = _check(tmp_path, ROOT / "config")
    assert status == Status.OK and "industries the rules name are listed" in detail


def test_each_unlisted_industry_is_named_with_the_file_and_rule(tmp_path: Path) -> None:
    config = _config(tmp_path)
    scoring = config / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("retail, healthcare]", "retail, fintech]"))
    routing = config / "routing.yaml"
    routing.write_text(routing.read_text().replace("[manufacturing, logistics]", "[mining]"))
    segments = config / "segments.yaml"
    segments.write_text(
        segments.read_text().replace(
            "      lifecycle_stage: [mql]\n",
            "      lifecycle_stage: [mql]\n      industry: [Hospital and Health Care, agritech]\n",
        )
    )

    status, detail = _check(tmp_path, config)

    assert status == Status.WARN
    assert "scoring.yaml fit rule target-industry: 'fintech'" in detail
    assert "segments.yaml segment middle-of-funnel: 'agritech'" in detail
    assert "routing.yaml rep " in detail and "'mining'" in detail
    assert "Hospital and Health Care" not in detail  # an alias, "and" read as "&": listed
    assert "healthcare" not in detail and "'saas'" not in detail


def test_a_broken_intake_file_fails_the_check_and_no_list_skips_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (config / "routing.yaml").unlink()  # optional: no reps to check
    intake = config / "intake.yaml"
    text = intake.read_text()
    head, _, _ = text.partition("industries:\n")
    intake.write_text(head + "confirmation_ttl_hours: 72\n")
    assert _check(tmp_path, config)[0] == Status.OK

    intake.write_text("industries: [not, a, mapping]\n")
    status, detail = _check(tmp_path, config)
    assert status == Status.FAIL and "intake.yaml" in detail
