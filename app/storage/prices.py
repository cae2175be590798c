"""Monthly storage cost estimates from a provider price table.

Prices are list prices for stored data, in US dollars per decimal terabyte (10^12 bytes)
per month, as the providers advertise them; requests, downloads (restores, prunes) and
minimum-commitment terms are not included. They change: the table is a guide, not a bill.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.targets import endpoint as ep

TB = 10**12


@dataclass(frozen=True)
class Price:
    usd_per_tb_month: float
    free_bytes: int = 0
    note: str = ""


PRICES: dict[str, Price | None] = {
    ep.B2: Price(
        6.0,
        free_bytes=10 * 10**9,
        note="Backblaze B2: $6/TB/month, first 10 GB free; some downloads included",
    ),
    ep.IDRIVE: Price(
        4.5, note="iDrive e2: about $4-5/TB/month with a yearly commitment (50% off year one)"
    ),
    ep.AWS: Price(
        23.0, note="Amazon S3 Standard: about $23/TB/month; requests and downloads extra"
    ),
    ep.OCI: Price(25.5, note="Oracle Cloud Object Storage (standard tier): about $25.5/TB/month"),
    ep.GENERIC: None,
}


@dataclass(frozen=True)
class Estimate:
    provider: str
    provider_name: str
    usd_per_tb_month: float | None
    monthly_usd: float | None
    free_bytes: int
    note: str


def estimate(provider: str | None, size_bytes: int) -> Estimate:
    """The monthly cost of keeping ``size_bytes`` with ``provider`` (None: unknown price)."""
    key = provider or ep.GENERIC
    name = ep.PROVIDER_NAMES.get(key, "local repository" if key == "local" else key)
    price = PRICES.get(key)
    if price is None:
        return Estimate(
            key,
            name,
            None,
            None,
            0,
            "no list price known for this provider: check its price page",
        )
    billed = max(0, size_bytes - price.free_bytes)
    monthly = round(billed / TB * price.usd_per_tb_month, 4)
    return Estimate(key, name, price.usd_per_tb_month, monthly, price.free_bytes, price.note)
