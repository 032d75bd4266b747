"""Japanese phone numbers: the one validator (pure, no database) for people, guardians, households and the ward.

A number is stored normalised — ASCII digits in one hyphenated form — and shown as stored:

- full-width digits and dashes (０９０－１２３４－５６７８), spaces, parentheses (045(788)7777) and +81 are accepted;
- mobiles and IP phones (070/080/090/050) have 11 digits: 090-1234-5678;
- landlines have 10 digits and a 4-digit subscriber number: the caller's grouping is kept when it is one
  (0466-12-3456, 03-1234-5678), otherwise 03/06 give 03-XXXX-XXXX and the rest 045-XXX-XXXX;
- 0120 / 0570 (10 digits) and 0800 (11 digits) numbers: 0120-123-456, 0800-123-4567.

Anything else is `Invalid` (code `invalid_phone`) with a Japanese message naming the examples. Empty is allowed:
every phone field is optional.
"""

from __future__ import annotations

import re
import unicodedata

from events.errors import Invalid

MAX_LENGTH = 32  # the columns are Varchar(32)
_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−ー－ｰ"})
_SEPARATORS = re.compile(r"[\s()（）.\-]+")
MOBILE_PREFIXES = ("050", "070", "080", "090")
MESSAGE = "電話番号の形式が正しくありません（例: 090-1234-5678、045-788-7777）。"


def normalize_phone(raw: object, field: str = "phone") -> str:
    """'' for an empty value, the hyphenated form for a Japanese number, Invalid otherwise."""
    text = unicodedata.normalize("NFKC", str(raw or "")).translate(_DASHES).strip()
    if not text:
        return ""
    if text.startswith("+81"):
        text = "0" + text[3:].lstrip(" -")
    groups = [g for g in _SEPARATORS.split(text) if g]
    digits = "".join(groups)
    if len(text) > MAX_LENGTH or not digits.isdigit() or not digits.startswith("0") or digits.startswith("00"):
        raise Invalid(MESSAGE, code="invalid_phone", field=field)
    if len(digits) == 11 and digits.startswith(MOBILE_PREFIXES):
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    if len(digits) == 11 and digits.startswith("0800"):
        return f"{digits[:4]}-{digits[4:7]}-{digits[7:]}"
    if len(digits) == 10 and digits.startswith(("0120", "0570")):
        return f"{digits[:4]}-{digits[4:7]}-{digits[7:]}"
    if len(digits) == 10 and not digits.startswith(("050", "070", "080", "090", "0120", "0570", "0800")):
        if len(groups) == 3 and 2 <= len(groups[0]) <= 5 and len(groups[2]) == 4:
            return "-".join(groups)  # the caller's area code (they know it; the table of codes is long)
        if digits.startswith(("03", "06")):
            return f"{digits[:2]}-{digits[2:6]}-{digits[6:]}"
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    raise Invalid(MESSAGE, code="invalid_phone", field=field)

