from pathlib import Path

from bench.report import write_section


def test_write_section_replaces_only_its_own_block(tmp_path: Path) -> None:
    path = tmp_path / "PERFORMANCE.md"
    path.write_text("# Performance\n\n<!-- bench:a -->\nold a\n<!-- /bench:a -->\n")
    write_section("b", "b figures", path)
    write_section("a", "new a", path)
    text = path.read_text()
    assert "new a" in text and "old a" not in text
    assert text.index("new a") < text.index("b figures")
    write_section("b", "b again", path)
    assert path.read_text().count("<!-- bench:b -->") == 1
