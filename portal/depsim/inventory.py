"""Deterministic, realistic device inventory for simulated MDM servers.

Serials are a bijection of a simulator-wide device number, so they are unique across every
server without any lookup; the other attributes come from a seeded RNG so a server created
with the same seed gets the same kind of fleet.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

# Apple's 12-character serials avoid I and O; dropping U and Z as well leaves 32 symbols.
SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTVWXY"
_BITS = 45  # 9 base-32 symbols
_MASK = (1 << _BITS) - 1
REGIONS = ("USA", "USA", "USA", "ZDD", "GBR", "CAN", "AUS", "DEU")
# First three characters: manufacturing location codes seen on real devices of each family.
PLANTS = {
    "iPhone": ("F2L", "DNP", "G6T", "FFM", "DX3"),
    "iPad": ("DMP", "DMQ", "GG7", "F9F"),
    "Mac": ("C02", "FVF", "C07", "H4T"),
    "AppleTV": ("DY3", "C0H"),
    "Vision": ("H0V", "J7Q"),
}


@dataclass(frozen=True)
class ModelSpec:
    """One purchasable model: how Apple names it and how its SKU description reads."""

    family: str
    os: str
    model: str
    template: str
    colors: tuple[str, ...]
    options: dict
    weight: int


_CAPS = ("128GB", "256GB", "512GB")
CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec("iPhone", "iOS", "iPhone 15", "IPHONE 15 {color} {cap}-{region}",
              ("BLACK", "BLUE", "GREEN", "YELLOW", "PINK"), {"cap": _CAPS}, 14),
    ModelSpec("iPhone", "iOS", "iPhone 15 Pro", "IPHONE 15 PRO {color} {cap}-{region}",
              ("BLACK TITANIUM", "WHITE TITANIUM", "BLUE TITANIUM", "NATURAL TITANIUM"),
              {"cap": _CAPS + ("1TB",)}, 8),
    ModelSpec("iPhone", "iOS", "iPhone 14", "IPHONE 14 {color} {cap}-{region}",
              ("MIDNIGHT", "STARLIGHT", "PURPLE", "BLUE", "RED"), {"cap": _CAPS}, 10),
    ModelSpec("iPhone", "iOS", "iPhone 16", "IPHONE 16 {color} {cap}-{region}",
              ("BLACK", "WHITE", "PINK", "TEAL", "ULTRAMARINE"), {"cap": _CAPS}, 6),
    ModelSpec("iPhone", "iOS", "iPhone SE (3rd generation)", "IPHONE SE {color} {cap}-{region}",
              ("MIDNIGHT", "STARLIGHT", "RED"), {"cap": ("64GB", "128GB", "256GB")}, 3),
    ModelSpec("iPad", "iPadOS", "iPad Air (5th generation)", "IPAD AIR {conn} {cap} {color}-{region}",
              ("SPACE GRAY", "STARLIGHT", "PINK", "PURPLE", "BLUE"),
              {"cap": ("64GB", "256GB"), "conn": ("WI-FI", "WI-FI", "WI-FI + CELLULAR")}, 10),
    ModelSpec("iPad", "iPadOS", "iPad (10th generation)", "IPAD {conn} {cap} {color}-{region}",
              ("SILVER", "BLUE", "PINK", "YELLOW"),
              {"cap": ("64GB", "256GB"), "conn": ("WI-FI", "WI-FI", "WI-FI + CELLULAR")}, 12),
    ModelSpec("iPad", "iPadOS", "iPad Pro 11-inch (4th generation)", "IPAD PRO 11 {conn} {cap} {color}-{region}",
              ("SPACE GRAY", "SILVER"),
              {"cap": ("128GB", "256GB", "512GB", "1TB"), "conn": ("WI-FI", "WI-FI + CELLULAR")}, 5),
    ModelSpec("iPad", "iPadOS", "iPad mini (6th generation)", "IPAD MINI {conn} {cap} {color}-{region}",
              ("SPACE GRAY", "PINK", "PURPLE", "STARLIGHT"),
              {"cap": ("64GB", "256GB"), "conn": ("WI-FI", "WI-FI + CELLULAR")}, 3),
    ModelSpec("Mac", "OSX", "MacBook Pro 14-inch", "MBP 14 {color}/{chip}/{ram}/{cap}-{region}",
              ("SPACE BLACK", "SILVER"),
              {"chip": ("M3 8C", "M3 PRO 11C", "M3 MAX 14C"), "ram": ("16GB", "18GB", "36GB"),
               "cap": ("512GB", "1TB")}, 8),
    ModelSpec("Mac", "OSX", "MacBook Air 13-inch", "MBA 13 {color}/{chip}/{ram}/{cap}-{region}",
              ("MIDNIGHT", "STARLIGHT", "SPACE GRAY", "SILVER"),
              {"chip": ("M2 8C", "M3 8C"), "ram": ("8GB", "16GB"), "cap": ("256GB", "512GB")}, 9),
    ModelSpec("Mac", "OSX", "iMac 24-inch", "IMAC 24 {color}/{chip}/{ram}/{cap}-{region}",
              ("BLUE", "GREEN", "PINK", "SILVER", "YELLOW", "ORANGE", "PURPLE"),
              {"chip": ("M3 8C",), "ram": ("8GB", "16GB"), "cap": ("256GB", "512GB")}, 3),
    ModelSpec("Mac", "OSX", "Mac mini", "MAC MINI {chip}/{ram}/{cap}-{region}", ("SILVER",),
              {"chip": ("M2 8C", "M2 PRO 10C"), "ram": ("8GB", "16GB"), "cap": ("256GB", "512GB")}, 2),
    ModelSpec("AppleTV", "tvOS", "Apple TV 4K", "APPLE TV 4K {conn} {cap}-{region}", ("BLACK",),
              {"conn": ("WI-FI", "WI-FI + ETHERNET"), "cap": ("64GB", "128GB")}, 5),
    ModelSpec("Vision", "visionOS", "Apple Vision Pro", "APPLE VISION PRO {cap}-{region}", ("SILVER",),
              {"cap": ("256GB", "512GB", "1TB")}, 2),
)
_WEIGHTS = [spec.weight for spec in CATALOGUE]


def _permute(number: int) -> int:
    """A bijection on 45-bit integers (odd multiplications and xor-shifts are invertible)."""
    x = (number * 0x1B873593D + 0x5BD1E995) & _MASK
    x ^= x >> 23
    x = (x * 0x5DEECE66D) & _MASK
    x ^= x >> 19
    x = (x * 0x2545F4914F) & _MASK  # odd
    return x ^ (x >> 21)


_PAIRS = tuple(a + b for a in SERIAL_ALPHABET for b in SERIAL_ALPHABET)  # 10 bits → 2 symbols


def serial_for(number: int, family: str) -> str:
    """A 12-character Apple-style serial, unique for each simulator-wide device number."""
    if not 0 <= number <= _MASK:
        raise ValueError("device number out of range")
    x = _permute(number)
    plants = PLANTS[family]
    return (plants[number % len(plants)] + _PAIRS[x & 1023] + _PAIRS[(x >> 10) & 1023]
            + _PAIRS[(x >> 20) & 1023] + _PAIRS[(x >> 30) & 1023] + SERIAL_ALPHABET[x >> 40])


def _pick(rng: random.Random, values: tuple):
    # Indexing by random() is several times faster than rng.choice in the 200k-device loop.
    return values[int(rng.random() * len(values))]


def _attributes(rng: random.Random, spec: ModelSpec, index: int) -> tuple:
    """(family, os, model, description, color, asset_tag) for one device of `spec`."""
    color = _pick(rng, spec.colors)
    fields = {key: _pick(rng, values) for key, values in spec.options.items()}
    description = spec.template.format(color=color, region=_pick(rng, REGIONS), **fields)
    # Roughly one device in seven carries an asset tag; most real records have none.
    asset_tag = f"AT-{index:06d}" if rng.random() < 0.15 else None
    return spec.family, spec.os, spec.model, description, color, asset_tag


def generate(seed: int, start_index: int, first_number: int, count: int) -> list[tuple]:
    """`count` devices as (serial, family, os, model, description, color, asset_tag) tuples."""
    rng = random.Random(f"{seed}:{start_index}")
    specs = rng.choices(CATALOGUE, weights=_WEIGHTS, k=count)
    rows = []
    for offset, spec in enumerate(specs):
        attrs = _attributes(rng, spec, start_index + offset)
        rows.append((serial_for(first_number + offset, spec.family),) + attrs)
    return rows


def describe_serial(serial: str) -> tuple:
    """Attributes for an explicitly named serial, deterministic in it (family follows its prefix)."""
    rng = random.Random(serial)
    family = next((f for f, plants in PLANTS.items() if serial[:3] in plants), None)
    specs = [s for s in CATALOGUE if s.family == family] or list(CATALOGUE)
    spec = rng.choices(specs, weights=[s.weight for s in specs])[0]
    return (serial,) + _attributes(rng, spec, 0)


def _digits(digest: bytes, count: int) -> str:
    return "".join(str(b % 10) for b in digest[:count])


def _luhn_complete(body: str) -> str:
    """Append the Luhn check digit IMEIs carry."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def hardware_ids(serial: str, family: str, description: str) -> dict:
    """Protocol-10 hardware fields (MACs, IMEI/MEID, EID), derived from the serial so they never change."""
    digest = hashlib.sha256(b"hw:" + serial.encode()).digest()

    def mac(offset: int) -> str:
        return ":".join(f"{b:02X}" for b in (0xAC, 0xBC) + tuple(digest[offset:offset + 4]))

    ids: dict = {"wifi_mac_address": mac(0), "bluetooth_mac_address": mac(4)}
    if family == "Mac" or "ETHERNET" in description:
        ids["ethernet_mac_address"] = mac(8)
    if family == "iPhone" or "CELLULAR" in description:
        imei = _luhn_complete("35" + _digits(digest[12:], 12))
        ids["imei"] = [imei]
        ids["meid"] = [imei[:14]]
    if family == "iPhone":
        ids["eid"] = "89049032" + _digits(digest[8:], 24)
    ids["is_replacement_device"] = False
    return ids
