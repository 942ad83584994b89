"""`leadops quarantine release` reads a record with the rules its import used, and
`leads import --dry-run` skips content in file quarantine as the import does."""

from __future__ import annotations

import json
from pathlib import Path

from leadops.cli import app
from tests.e2e.test_import_mappings import NOW, counts, leads, run, runner

pytest_plugins = ["tests.e2e.test_import_mappings"]  # the `workdir` fixture

LATER = "2026-12-01T09:00Z"


def test_release_maps_values_and_dates_as_the_import_did(workdir: Path) -> None:
    (workdir / "de.csv").write_text(
        "E-Mail,Vorname,lifecycle_stage,email_consent,Land,created_at\n"
        "ann(at)x.io,Ann,Marketing Qualified Lead,ja,Deutschland,22.11.2026 14:03\n"
    )
    run("leads", "import", "de.csv", "--now", NOW, code=4)
    assert counts()["quarantine"] == 1

    out = run("quarantine", "release", "1", "--set", "email=ann@x.io", "--now", LATER)

    assert "created" in out
    lead = leads()["ann@x.io"]
    assert (lead["first_name"], lead["lifecycle_stage"], lead["country"]) == ("Ann", "mql", "DE")
    assert lead["email_consent"] in (True, 1)
    assert str(lead["created_at"]).startswith("2026-11-22 14:03")


def test_release_reads_with_the_ready_mapping_the_file_was_imported_with(workdir: Path) -> None:
    (workdir / "export.csv").write_text(
        "Email,First Name,Lifecycle Stage,Marketing contact status\n"
        "bo(at)x.io,Bo,Sales Qualified Lead,Marketing contact\n"
    )
    run("leads", "import", "export.csv", "--mapping", "hubspot", "--now", NOW, code=4)

    # config/intake.yaml's csv values do not read HubSpot's consent words
    refused = run("quarantine", "release", "1", "--set", "email=bo@x.io", code=1)
    assert "invalid_consent" in refused
    run("quarantine", "release", "1", "--set", "email=bo@x.io", "--mapping", "hubspot")

    lead = leads()["bo@x.io"]
    assert lead["lifecycle_stage"] == "sql" and lead["email_consent"] in (True, 1)


def test_release_with_an_unknown_mapping_is_a_clear_error(workdir: Path) -> None:
    result = runner.invoke(app, ["quarantine", "release", "1", "--mapping", "pipedrive"])
    assert result.exit_code != 0
    assert "unknown mapping 'pipedrive'" in result.output + str(result.exception)


def test_a_dry_run_skips_a_file_in_file_quarantine_as_the_import_does(workdir: Path) -> None:
    (workdir / "dupe.csv").write_text(
        "email,Email Address,first_name,email_consent\ncy@x.io,cy@x.io,Cy,yes\n"
    )
    run("leads", "import", "dupe.csv", "--now", NOW, code=3)  # two email columns
    config = workdir / "config" / "intake.yaml"
    config.write_text(config.read_text().replace("    Email Address: email\n", ""))

    def dry(*extra: str, code: int) -> dict[str, object]:
        out = run("leads", "import", "dupe.csv", "--dry-run", "--format", "json", *extra, code=code)
        (source,) = json.loads(out)["sources"]
        return dict(source)

    # the file is still open in file quarantine: the import skips it, so does its dry run
    held = dry("--now", LATER, code=3)
    assert held["note"] == "would be skipped: quarantined file 1, open" and held["read"] == 0
    assert "skipped: quarantined file 1, open" in run(
        "leads", "import", "dupe.csv", "--now", LATER, code=3
    )
    assert counts()["leads"] == 0
    # --force reads it, in the dry run as in the import
    forced = dry("--force", "--now", LATER, code=0)
    assert (forced["read"], forced["created"]) == (1, 1)
