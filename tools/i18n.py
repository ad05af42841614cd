"""``make i18n``: re-extract the web desk's strings and update its catalogues.

Extracts every ``_()`` / ``N_()`` string of pypbx/web/templates/*.html and pypbx/web/*.py
(Babel), writes pypbx/web/locale/messages.pot and merges it into each language's
``<lang>/LC_MESSAGES/messages.po`` (new strings come in untranslated, translations are kept,
strings no longer used are dropped). Then lists what each language still lacks; with
``--check`` that list makes the exit status 1. The web desk reads the .po files themselves at
start-up: there is nothing to compile.

    .venv/bin/python tools/i18n.py          # update
    .venv/bin/python tools/i18n.py --check  # only report (exit 1 if a string is untranslated)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.pofile import write_po  # noqa: E402

from pypbx.web import i18n  # noqa: E402


def template() -> Catalog:
    cat = Catalog(project="pypbx web desk", domain=i18n.DOMAIN, fuzzy=False)
    for mid, locations in sorted(i18n.extract().items()):
        cat.add(mid, locations=[(loc.rpartition(":")[0], int(loc.rpartition(":")[2])) for loc in locations])
    return cat


def update(pot: Catalog) -> None:
    (i18n.LOCALE_DIR).mkdir(parents=True, exist_ok=True)
    with (i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot").open("wb") as f:
        write_po(f, pot, omit_header=False, sort_output=True)
    for lang in i18n.TRANSLATED:
        path = i18n.po_path(lang)
        if path.exists():
            cat = i18n.read_catalog(lang)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            cat = Catalog(locale=lang, domain=i18n.DOMAIN, project="pypbx web desk")
        cat.update(pot, no_fuzzy_matching=True)
        cat.obsolete.clear()
        with path.open("wb") as f:
            write_po(f, cat, sort_output=True, include_previous=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report untranslated strings (exit 1 if any)")
    args = ap.parse_args()
    ids = i18n.extract()
    if not args.check:
        update(template())
    missing = {lang: i18n.missing(ids, lang) for lang in i18n.TRANSLATED}
    for lang, ms in missing.items():
        print(f"{lang}: {len(ids) - len(ms)}/{len(ids)} translated" + (f"; missing: {ms}" if ms else ""))
    return 1 if args.check and any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
