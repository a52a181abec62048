"""Every citation of docs/method.md in the code, configs and README names a section the file has."""

from __future__ import annotations

import re

from harness.core.paths import REPO

CITED = re.compile(r'docs/method\.md,?\s+\(?((?:"[^"]+"(?:,|\s+and)?\s*)+)')


def cited_sections() -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    files = [
        REPO / "README.md",
        *(p for d in ("aflora", "baselines", "harness", "conf", "tests") for p in (REPO / d).rglob("*")),
    ]
    for path in files:
        if path.suffix not in {".py", ".yaml", ".md"} or not path.is_file():
            continue
        for match in CITED.finditer(path.read_text()):
            for name in re.findall(r'"([^"]+)"', match.group(1)):
                sections.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return sections


def test_every_cited_section_exists():
    headings = set(re.findall(r"^#{2,3} (.+)$", (REPO / "docs" / "method.md").read_text(), flags=re.M))
    cited = cited_sections()
    assert len(cited) >= 8  # the code does cite it, section by section
    missing = {name: sorted(where) for name, where in cited.items() if name not in headings}
    assert not missing, missing
