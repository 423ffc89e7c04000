"""The partners of the roaming exchange (漫游投诉转递): each provincial deployment's company code,
address, shared secret and number segments (号段), read from ``KEFU_PARTNERS`` or, for the demo,
from the shipped table with every partner looped back to this server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PARTNERS_FILE = Path(__file__).with_name("roaming_partners.json")
DEMO_SECRET = "kefu-demo-roaming-secret"  # the loopback demo's shared secret (never in production)

@dataclass(frozen=True)
class Partner:
    """A provincial deployment: its company code, name, address, the pair's secret, its 号段."""

    code: str
    name: str
    url: str
    secret: str
    prefixes: tuple[str, ...] = ()
    national: bool = False  # the national centre (全国中心): escalations go there (processes/national.py)


@dataclass
class Partners:
    """This deployment's company code and the partners it exchanges with. ``loopback`` (the demo
    without ``KEFU_PARTNERS``): every partner's url is this server, which answers for them all."""

    company: str
    entries: dict[str, Partner] = field(default_factory=dict)
    loopback: bool = False

    def home_of(self, phone: str | None) -> Partner | None:
        """The partner whose number segments hold ``phone`` (never this deployment itself)."""
        digits = "".join(ch for ch in str(phone or "") if ch in "0123456789")
        if digits.startswith("86") and len(digits) == 13:
            digits = digits[2:]
        segment = digits[:7]
        if len(segment) < 7:
            return None
        for partner in self.entries.values():
            if partner.code != self.company and not partner.national and segment in partner.prefixes:
                return partner
        return None

    def answers_for(self, code: str) -> bool:
        """Whether a dispatch addressed to ``code`` is ours to handle."""
        return code == self.company or (self.loopback and code in self.entries)

    def national_centre(self) -> Partner | None:
        """The partner marked ``"national": true`` (None: national escalation is not configured)."""
        return next((p for p in self.entries.values() if p.national and p.code != self.company), None)

    def is_national(self, code: str) -> bool:
        partner = self.entries.get(code)
        return partner is not None and partner.national

    def name_of(self, code: str) -> str:
        partner = self.entries.get(code)
        return partner.name if partner else code


def load_partners(company: str, path: str | None, self_url: str) -> Partners:
    """The partners from the JSON file ``path`` (``KEFU_PARTNERS``); without it, the shipped table
    of number segments with every partner looped back to ``self_url`` (the demo)."""
    company = (company or "YN").strip().upper()
    if path:
        return Partners(company, _entries(json.loads(Path(path).read_text(encoding="utf-8"))))
    table = json.loads(DEFAULT_PARTNERS_FILE.read_text(encoding="utf-8"))
    for item in table:
        item.setdefault("url", self_url)
        item.setdefault("secret", DEMO_SECRET)
    entries = _entries(table)
    if company not in entries:
        entries[company] = Partner(company, company, self_url, DEMO_SECRET)
    return Partners(company, entries, loopback=True)


def _entries(items: Any) -> dict[str, Partner]:
    if isinstance(items, dict):
        items = items.get("partners") or []
    entries: dict[str, Partner] = {}
    for item in items:
        code = str(item["code"]).strip().upper()
        entries[code] = Partner(code=code, name=str(item.get("name") or code), url=str(item.get("url") or ""),
                                secret=str(item.get("secret") or ""),
                                prefixes=tuple(str(p).strip() for p in item.get("prefixes") or ()),
                                national=item.get("national") is True)
    return entries
