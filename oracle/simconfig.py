"""The sim oracle's configuration: per-symbol start price, drift and volatility, a default for the rest, a
correlation matrix (checked positive definite), a time scale, a tick size and the size traded per tick
(`volume`: median, sigma, lot; `oracle.simvolumes` draws it). Read from JSON (oracle/configs/default.json)
with flags over it; every refusal names the file or flag and the field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from oracle import units
from oracle.fixing_methods import VOLUME_SCALE
from oracle.units import PRICE_SCALE, name_key

MAX_VOLUME = 10**9  # units: a median or lot above it is a typo


class ConfigError(ValueError):
    """A simulation config that cannot be used; the message names the file or flag and the field."""


def parse_price_text(text: str) -> int:
    """Exact base units of a decimal price written as text (`units.parse_price`: strict ASCII digits);
    ValueError says why it is refused."""
    if not text.strip():
        raise ValueError("empty price")
    return units.parse_price(text, "price")


# ---------------------------------------------------------------- simulation config


@dataclass(frozen=True)
class LegParams:
    start: int  # base units
    drift: float  # annualised
    vol: float  # annualised

    @classmethod
    def from_dict(cls, data: object, where: str) -> LegParams:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected an object with start, drift and vol")
        unknown = sorted(set(data) - {"start", "drift", "vol"})
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r} (use start, drift, vol)")
        for name in ("start", "drift", "vol"):
            if name not in data:
                raise ConfigError(f"{where}: missing {name!r}")
        try:
            start = parse_price_text(str(data["start"]))
        except ValueError as exc:
            raise ConfigError(f"{where}.start: {exc}") from None
        return cls(start, _number(data["drift"], f"{where}.drift"), _vol(data["vol"], f"{where}.vol"))


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: expected a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{where}: expected a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: must be finite")
    return number


def _vol(value: object, where: str) -> float:
    vol = _number(value, where)
    if not 0 <= vol <= 10:
        raise ConfigError(f"{where}: volatility must be between 0 and 10 (annualised), not {vol}")
    return vol


@dataclass(frozen=True)
class SimConfig:
    """Per-symbol start/drift/vol, a default for unknown symbols, and a correlation matrix.

    Pairs of symbols not both in `corr_symbols` get `corr_default`.
    """

    symbols: dict[str, LegParams] = field(default_factory=dict)
    default: LegParams = LegParams(100 * PRICE_SCALE, 0.05, 0.3)
    corr_symbols: tuple[str, ...] = ()
    corr_matrix: tuple[tuple[float, ...], ...] = ()
    corr_default: float = 0.0
    time_scale: float = 1.0
    tick_size: int = 1  # base units
    # The size traded per tick, in 10**-6 units: lognormal around `volume_median` (sigma in log units),
    # rounded to a whole number of `volume_lot` (at least one lot).
    volume_median: int = 100 * VOLUME_SCALE
    volume_sigma: float = 1.0
    volume_lot: int = VOLUME_SCALE

    @classmethod
    def from_dict(cls, data: object, name: str = "config") -> SimConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{name}: expected a JSON object")
        allowed = {"description", "time_scale", "tick_size", "symbols", "default", "correlation", "volume"}
        unknown = sorted(k for k in set(data) - allowed if not str(k).startswith("_"))
        if unknown:
            raise ConfigError(f"{name}: unknown field {unknown[0]!r}")
        symbols_raw = data.get("symbols", {})
        if not isinstance(symbols_raw, Mapping):
            raise ConfigError(f"{name}: 'symbols' must map each symbol to its start, drift and vol")
        symbols = {name_key(sym): LegParams.from_dict(p, f"{name}: symbols.{sym}") for sym, p in symbols_raw.items()}
        default = LegParams.from_dict(data["default"], f"{name}: default") if "default" in data else cls.default
        time_scale = _number(data.get("time_scale", 1), f"{name}: time_scale")
        if not 0 < time_scale <= 1_000_000:
            raise ConfigError(f"{name}: time_scale must be > 0 and at most 1000000")
        try:
            tick_size = parse_price_text(str(data.get("tick_size", "0.000001")))
        except ValueError as exc:
            raise ConfigError(f"{name}: tick_size: {exc}") from None
        corr = data.get("correlation", {})
        if not isinstance(corr, Mapping):
            raise ConfigError(f"{name}: 'correlation' must be an object with symbols, matrix and default")
        corr_symbols = tuple(name_key(s) for s in corr.get("symbols", ()))
        matrix = corr.get("matrix", [])
        where = f"{name}: correlation.matrix"
        if not isinstance(matrix, list) or len(matrix) != len(corr_symbols):
            raise ConfigError(f"{where}: needs one row per symbol in correlation.symbols ({len(corr_symbols)})")
        rows = []
        for i, row in enumerate(matrix):
            if not isinstance(row, list) or len(row) != len(corr_symbols):
                raise ConfigError(f"{where}[{i}]: needs {len(corr_symbols)} numbers")
            rows.append(tuple(_number(x, f"{where}[{i}][{j}]") for j, x in enumerate(row)))
        config = cls(
            **_volume(data.get("volume", {}), f"{name}: volume"),
            symbols=symbols,
            default=default,
            corr_symbols=corr_symbols,
            corr_matrix=tuple(rows),
            corr_default=_number(corr.get("default", 0.0), f"{name}: correlation.default"),
            time_scale=time_scale,
            tick_size=tick_size,
        )
        config.check(name)
        return config

    def check(self, name: str = "config") -> None:
        if len(set(self.corr_symbols)) != len(self.corr_symbols):
            raise ConfigError(f"{name}: correlation.symbols lists a symbol twice")
        if not -1 < self.corr_default < 1:
            raise ConfigError(f"{name}: correlation.default must be strictly between -1 and 1")
        n = len(self.corr_symbols)
        for i in range(n):
            if self.corr_matrix[i][i] != 1:
                raise ConfigError(f"{name}: correlation.matrix[{i}][{i}] must be 1")
            for j in range(n):
                value = self.corr_matrix[i][j]
                if not -1 <= value <= 1:
                    raise ConfigError(f"{name}: correlation.matrix[{i}][{j}] must be between -1 and 1")
                if value != self.corr_matrix[j][i]:
                    raise ConfigError(f"{name}: correlation.matrix is not symmetric at [{i}][{j}]")
        if n:
            cholesky(np.array(self.corr_matrix, dtype=float), list(self.corr_symbols), name)

    def params(self, symbol: str) -> LegParams:
        return self.symbols.get(name_key(symbol), self.default)

    def correlation(self, legs: Sequence[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.corr_symbols)}
        n = len(legs)
        matrix = np.eye(n)
        for a in range(n):
            for b in range(n):
                if a == b:
                    continue
                ia, ib = index.get(name_key(legs[a])), index.get(name_key(legs[b]))
                matrix[a, b] = self.corr_matrix[ia][ib] if ia is not None and ib is not None else self.corr_default
        return matrix

    def with_overrides(
        self,
        *,
        start: Mapping[str, int] | None = None,
        drift: Mapping[str, float] | None = None,
        vol: Mapping[str, float] | None = None,
        correlation: float | None = None,
        time_scale: float | None = None,
        legs: Sequence[str] = (),
    ) -> SimConfig:
        """Flags over the file. Key "*" applies to the default and every symbol (configured or in `legs`)."""
        symbols = dict(self.symbols)
        default = self.default
        for attr, values in (("start", start), ("drift", drift), ("vol", vol)):
            for sym, value in (values or {}).items():
                if sym == "*":
                    default = replace(default, **{attr: value})
                    for known in set(symbols) | {name_key(leg) for leg in legs}:
                        symbols[known] = replace(symbols.get(known, self.default), **{attr: value})
                else:
                    key = name_key(sym)
                    symbols[key] = replace(symbols.get(key, default), **{attr: value})
        changes: dict = {"symbols": symbols, "default": default}
        if correlation is not None:
            if not -1 < correlation < 1:
                raise ConfigError(f"--correlation {correlation}: must be strictly between -1 and 1")
            n = len(self.corr_symbols)
            changes["corr_matrix"] = tuple(tuple(1.0 if i == j else correlation for j in range(n)) for i in range(n))
            changes["corr_default"] = correlation
        if time_scale is not None:
            if not 0 < time_scale <= 1_000_000:
                raise ConfigError(f"--time-scale {time_scale}: must be > 0 and at most 1000000")
            changes["time_scale"] = time_scale
        return replace(self, **changes)


def _volume(data: object, where: str) -> dict:
    """The config's `volume` object ({"median": "100", "sigma": 1.0, "lot": "1"}, each optional) as
    SimConfig fields: median and lot in units (up to 6 decimals), sigma 0 to 5."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object with median, sigma and lot")
    unknown = sorted(set(data) - {"median", "sigma", "lot"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (use median, sigma, lot)")
    out: dict = {}
    for key, field_name in (("median", "volume_median"), ("lot", "volume_lot")):
        if key in data:
            try:
                out[field_name] = units.parse_fixed(data[key], dp=6, what=key, max_value=MAX_VOLUME)
            except ValueError as exc:
                raise ConfigError(f"{where}.{exc}") from None
    if "sigma" in data:
        sigma = _number(data["sigma"], f"{where}.sigma")
        if not 0 <= sigma <= 5:
            raise ConfigError(f"{where}.sigma: must be between 0 and 5, not {sigma}")
        out["volume_sigma"] = sigma
    return out


def load_config(path: str | Path) -> SimConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else "1:1"
        raise ConfigError(f"{path}:{where}: not valid JSON: {getattr(exc, 'msg', exc)}") from None
    return SimConfig.from_dict(data, str(path))


def cholesky(matrix: np.ndarray, legs: Sequence[str], name: str = "correlation") -> np.ndarray:
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ConfigError(f"{name}: the correlation matrix of {', '.join(legs)} is not positive definite") from None
