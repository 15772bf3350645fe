"""Results come with their evidence: every file a results page names is in the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
EXTENSIONS = "json|jsonl|md|png|csv|yaml|txt|html|npy|tgz"
# A file a page names: `name.ext` in backticks, or the target of a Markdown link or image.
NAMED = re.compile(rf"`([^`\s]+\.(?:{EXTENSIONS}))`|\]\(([^)\s]+\.(?:{EXTENSIONS}))\)")


def missing_files(page: Path) -> list[str]:
    """Files ``page`` names that exist neither beside it nor from the repository's root (names with a
    placeholder such as ``<name>`` or ``*`` are patterns, not files)."""
    names = [a or b for a, b in NAMED.findall(page.read_text())]
    return [
        n for n in names
        if not re.search(r"[<>*{}$]", n) and not n.startswith("http")
        and not ((page.parent / n).exists() or (ROOT / n).exists())
    ]  # fmt: skip


@pytest.mark.parametrize("page", sorted(RESULTS.rglob("*.md")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_every_file_a_results_page_names_is_in_the_repository(page):
    assert not missing_files(page)


def test_the_check_sees_a_missing_file(tmp_path):
    page = tmp_path / "README.md"
    (tmp_path / "here.json").write_text("{}")
    page.write_text("Raw: `here.json`, `gone.json`, ![plot](plot.png), `runs/<name>/summary.json`.")
    assert missing_files(page) == ["gone.json", "plot.png"]
