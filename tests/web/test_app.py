from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.web.app import create_app


def test_healthz_reports_ok_when_the_database_answers(settings: Settings, engine: Engine) -> None:
    client = TestClient(create_app(settings, engine))
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_paths_are_404_and_no_docs_are_exposed(
    settings: Settings, sqlite_engine: Engine
) -> None:
    client = TestClient(create_app(settings, sqlite_engine))
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
