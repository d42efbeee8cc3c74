"""MkDocs hook: one documentation page per dataset card.

The dataset cards live in the repository's ``datasets/`` folder (one Markdown
file per card, named in the registry's ``DatasetInfo.card``). This hook turns
the registry plus those cards into ``datasets/<card>.md`` pages and a
``datasets/index.md`` table, so the docs never hold a second copy of a card
that could drift from it. A registered dataset whose card is not in the
repository yet still gets a page with the registry facts.

It runs at build time only and reads no data files: the table says which
datasets a user can load, not whether this machine has them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "datasets"

# Card links that point outside the docs (``SOURCE.md``, relative repository
# paths) cannot resolve on the site; strict mode would fail on them, so they
# are shown as code instead of links. Absolute URLs and anchors are kept.
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _registry():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from neurodecode.registry import _REGISTRY  # noqa: PLC0415 (build-time import)

    return list(_REGISTRY.values())


def _groups():
    """``{card stem: [DatasetInfo, ...]}`` in registry order."""
    groups: dict[str, list] = {}
    for info in _registry():
        stem = Path(info.card).stem if info.card else info.name
        groups.setdefault(stem, []).append(info)
    return groups


def _fix_links(text: str) -> str:
    def repl(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"^(https?:|mailto:|#)", target):
            return m.group(0)
        return f"{label} (`{target}`)"

    return _LINK.sub(repl, text)


def _demote_headings(text: str) -> str:
    # The page title is ours; a card's own "# title" becomes a section.
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def _facts(infos) -> str:
    rows = ["| name | modality | subjects | loader | data folder | source |",
            "|---|---|---|---|---|---|"]
    for i in infos:
        folder = "(simulated)" if i.folder is None else f"`{i.folder}/`"
        source = i.source or "(simulated)"
        rows.append(f"| `{i.name}` | {i.modality} | {i.n_subjects} | `{i.loader}` | {folder} | {source} |")
    return "\n".join(rows)


def _page(stem, infos) -> str:
    names = ", ".join(f"`{i.name}`" for i in infos)
    parts = [f"# {stem}", "", f"Registered name(s): {names}.", "", _facts(infos), "",
             "Load it with",
             "", "```python", "import neurodecode as nd", "",
             f'trials = nd.load_dataset("{infos[0].name}")', "```", ""]
    card = CARDS / f"{stem}.md"
    if card.is_file():
        parts += ["## Dataset card", "", f"From `datasets/{stem}.md`.", "",
                  _fix_links(_demote_headings(card.read_text(encoding="utf-8"))), ""]
    else:
        parts += ["!!! note", f"    The card `datasets/{stem}.md` is not in the repository yet; "
                  "the facts above come from the registry.", ""]
    return "\n".join(parts)


def _index(groups) -> str:
    rows = ["# Datasets", "",
            "Every dataset has a registered name, the same in Python "
            "(`neurodecode.load_dataset(name)`) and on the command line "
            "(`neurodecode datasets` lists them and says which are on this machine). "
            "neurodecode never downloads data: it reads them from `NEURODECODE_DATA` "
            "(default `../shared/datasets` next to a checkout) and MNE/MOABB data "
            "from `MNE_DATA`.", "",
            "| page | names | modality | subjects | what |", "|---|---|---|---|---|"]
    for stem, infos in groups.items():
        names = ", ".join(f"`{i.name}`" for i in infos)
        mods = ", ".join(sorted({i.modality for i in infos}))
        subjects = " / ".join(str(i.n_subjects) for i in infos)
        rows.append(f"| [{stem}]({stem}.md) | {names} | {mods} | {subjects} | {infos[0].description} |")
    return "\n".join(rows) + "\n"


def on_config(config):
    # Put one nav entry per card under "Datasets".
    groups = _groups()
    children = ["datasets/index.md"] + [{stem: f"datasets/{stem}.md"} for stem in groups]
    nav = config.get("nav") or []
    for i, item in enumerate(nav):
        if isinstance(item, dict) and item.get("Datasets") == "datasets/index.md":
            nav[i] = {"Datasets": children}
    return config


def on_files(files, config):
    groups = _groups()
    files.append(File.generated(config, "datasets/index.md", content=_index(groups)))
    for stem, infos in groups.items():
        files.append(File.generated(config, f"datasets/{stem}.md", content=_page(stem, infos)))
    return files
