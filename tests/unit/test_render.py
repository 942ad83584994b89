"""Unit tests for leadops.delivery.render, plus a smoke render of every real template."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadops.core.settings import Settings
from leadops.delivery.campaigns import load_campaigns
from leadops.delivery.compose import template_context
from leadops.delivery.render import Renderer, RenderError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    (tmp_path / "x").mkdir()
    files = {
        "x/syntax.txt.j2": "line one\nline two\n{% if %}\nafter\n",
        "x/undefined.txt.j2": "Hello\n\n{{ missing_thing }}\n",
        "x/page.html.j2": "<p>{{ v }}</p>",
        "x/page.txt.j2": "{{ v }}",
        "x/outer.txt.j2": "start\n{% include 'x/inner.txt.j2' %}\n",
        "x/inner.txt.j2": "a\nb\n{{ nope }}\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return Renderer(tmp_path)


def test_syntax_error_names_template_and_line(renderer: Renderer) -> None:
    with pytest.raises(RenderError) as info:
        renderer.render("x/syntax.txt.j2", {})
    assert info.value.template == "x/syntax.txt.j2"
    assert info.value.line == 3
    assert str(info.value).startswith("x/syntax.txt.j2:3:")


def test_undefined_variable_names_template_and_line(renderer: Renderer) -> None:
    with pytest.raises(RenderError) as info:
        renderer.render("x/undefined.txt.j2", {})
    assert info.value.template == "x/undefined.txt.j2"
    assert info.value.line == 3
    assert "missing_thing" in info.value.message


def test_error_in_included_template_names_that_template(renderer: Renderer) -> None:
    with pytest.raises(RenderError) as info:
        renderer.render("x/outer.txt.j2", {})
    assert info.value.template == "x/inner.txt.j2"
    assert info.value.line == 3


def test_missing_template(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="template not found"):
        renderer.render("x/none.txt.j2", {})


def test_html_autoescaped_text_not(renderer: Renderer) -> None:
    value = "<b>Tom & Jerry</b>"
    assert renderer.render("x/page.html.j2", {"v": value}) == (
        "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    )
    assert renderer.render("x/page.txt.j2", {"v": value}) == value


def test_sandbox_blocks_unsafe_attribute(tmp_path: Path) -> None:
    (tmp_path / "evil.txt.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(RenderError):
        Renderer(tmp_path).render("evil.txt.j2", {})


EMPTY_LEAD = {
    "first_name": None,
    "last_name": None,
    "full_name": None,
    "email": None,
    "phone": None,
    "company": None,
    "job_title": None,
    "industry": None,
    "country": None,
    "lifecycle_stage": "lead",
    "company_size": None,
}

CAMPAIGNS = load_campaigns(ROOT / "config")
STEPS = [(key, step.key) for key, camp in CAMPAIGNS.items() for step in camp.steps]


@pytest.fixture(scope="module")
def real_renderer() -> Renderer:
    return Renderer(ROOT / "templates")


@pytest.mark.parametrize(("campaign", "step"), STEPS)
def test_every_real_template_renders_for_sparse_lead(
    campaign: str, step: str, real_renderer: Renderer
) -> None:
    camp = CAMPAIGNS[campaign]
    context = template_context(
        lead=dict(EMPTY_LEAD),
        campaign=camp,
        step_key=step,
        settings=Settings(),
        unsubscribe="https://example.test/u/TOKEN",
    )
    channels = {c.value for c in camp.step(step).channels}
    if "email" in channels:
        email = real_renderer.email(campaign, step, context)
        assert email.subject.strip()
        assert "None" not in email.subject
        assert "https://example.test/u/TOKEN" in email.html
        assert "https://example.test/u/TOKEN" in email.text
        assert "None" not in email.text
    if "whatsapp" in channels:
        body = real_renderer.whatsapp(campaign, step, context)
        assert body.strip()
        assert "None" not in body
