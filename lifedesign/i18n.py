"""Translations: Japanese is the source language of every page; English comes from Babel catalogs.

Each area keeps its own catalog `lifedesign/locale/en/LC_MESSAGES/<area>.po`; all are merged at start-up
(compiled in memory, so there is no build step to forget).
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("ja", "en")


@lru_cache(maxsize=4)
def translations(locale: str) -> gettext.NullTranslations:
    if locale == "ja":
        return gettext.NullTranslations()
    merged: gettext.NullTranslations | None = None
    for po_path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        buffer = BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        part = gettext.GNUTranslations(buffer)
        if merged is None:
            merged = part
        else:
            merged.add_fallback(part)
    return merged or gettext.NullTranslations()


def gettext_for(locale: str):
    return translations(locale if locale in LANGUAGES else "ja").gettext
