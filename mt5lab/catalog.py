"""The feature catalog, version 1: the one source of truth for the bar schema and the 42 features.

Everything else reads this module: the TA-Lib computation (:mod:`mt5lab.features.compute`), the Feast
objects (:mod:`mt5lab.feast_repo.definitions`), the docs (``mt5lab catalog``) and the tests. Do not copy these lists.

Availability rule (against look-ahead): a feature row computed from a bar is known only when the bar
has *closed*, so its ``event_timestamp`` is ``time + timeframe``. A decision at ``t`` may see a row only
if ``event_timestamp <= t``.

Warm-up rule: a value is either right or null. Values whose dependence on where the loaded history
starts has not yet decayed below :data:`WARMUP_TOLERANCE` are published as null. ``warmup`` below is
the number of leading bars (per symbol) that are null: TA-Lib's own lookback plus, for recursively
smoothed indicators, the bars needed for every seed's weight to fall below the tolerance.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import polars as pl

from mt5lab.errors import ConfigError

CATALOG_VERSION = 1
FEATURE_SERVICE = "mt5_v1"
ENTITY = "symbol"

WARMUP_TOLERANCE = 1e-6
"""Relative tolerance for warm-up: a published value differs from the value computed on an
infinitely long history by at most ``WARMUP_TOLERANCE`` times the feature's scale (see
``Feature.scale``). Recorded with every training set."""

TIMEFRAMES: dict[str, timedelta] = {
    "M1": timedelta(minutes=1),
    "M5": timedelta(minutes=5),
    "M15": timedelta(minutes=15),
    "M30": timedelta(minutes=30),
    "H1": timedelta(hours=1),
    "H4": timedelta(hours=4),
    "D1": timedelta(days=1),
    "W1": timedelta(weeks=1),
}
DEFAULT_TIMEFRAME = "D1"

CALENDARS: tuple[str, ...] = ("fx", "equity", "uk_index", "eu_index", "24x7")
"""The market calendars. Trading hours: :mod:`mt5lab.bars.calendars`; holidays: :mod:`mt5lab.bars.holidays`."""

CALENDAR_EXCHANGES: dict[str, str] = {"equity": "XNYS", "uk_index": "XLON", "eu_index": "XETR"}
"""The ``exchange_calendars`` code whose *regular* holidays each exchange calendar keeps (NYSE, London
Stock Exchange, Xetra). ``fx`` has its own rule (closed 25 December and 1 January); ``24x7`` none."""

CALENDAR_CLOSURES: dict[str, timedelta] = {
    "fx": timedelta(days=3),  # weekend + Christmas Day or New Year's Day on a Monday or a Friday
    "equity": timedelta(days=3),  # weekend + a Monday or Friday holiday (Good Friday, Memorial Day, ...)
    "uk_index": timedelta(days=4),  # Good Friday to Easter Monday; Christmas + Boxing Day by a weekend
    "eu_index": timedelta(days=5),  # 24, 25, 26 December on Mon..Wed or Wed..Fri, plus the weekend
    "24x7": timedelta(0),
}
"""Each calendar's longest normal closure: the most consecutive whole days with no trading day
(trading dates of the calendar; weekends included) under its regular holidays, over
:data:`CLOSURE_YEARS`. Ad-hoc closures (9/11, Hurricane Sandy, state funerals) are not normal. A
test recomputes every figure from ``exchange_calendars`` (:func:`mt5lab.bars.holidays.longest_closure`)."""
CLOSURE_YEARS = (2000, 2035)

LONGEST_NORMAL_CLOSURE: timedelta = max(CALENDAR_CLOSURES.values())
"""The longest normal closure of any calendar (Xetra's Christmas, 5 days). A Feast view has one ttl
and holds symbols of every calendar, so the view ttl is built on this."""


def check_calendar(calendar: str) -> str:
    """Return ``calendar`` if known, else raise :class:`mt5lab.errors.ConfigError`."""
    if calendar not in CALENDARS:
        raise ConfigError(f"unknown calendar {calendar!r}; expected one of {', '.join(CALENDARS)}")
    return calendar


def ttl(timeframe: str) -> timedelta:
    """The Feast ``ttl`` of every view of ``timeframe``: the longest normal closure of any calendar
    (:data:`LONGEST_NORMAL_CLOSURE`) plus one bar.

    The last bar before a closure has its ``event_timestamp`` at its close. A decision made at any
    time until one bar after the market reopens may still use it; past that, a value that old means
    the feed has stopped, and it must come back as null (offline) or expired (online). Feast, the
    point-in-time join and the online reader all use this one value.
    """
    return LONGEST_NORMAL_CLOSURE + TIMEFRAMES[check_timeframe(timeframe)]


def calendar_ttl(timeframe: str, calendar: str) -> timedelta:
    """The ttl one calendar alone needs: its longest normal closure plus one bar of ``timeframe``
    (at most :func:`ttl`; for per-symbol docs and freshness, not for Feast views)."""
    return CALENDAR_CLOSURES[check_calendar(calendar)] + TIMEFRAMES[check_timeframe(timeframe)]


def check_timeframe(timeframe: str) -> str:
    tf = str(timeframe).upper()
    if tf not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {' '.join(TIMEFRAMES)}")
    return tf



def bar_duration(timeframe: str) -> timedelta:
    """The length of one bar of ``timeframe`` (raises ValueError for an unknown timeframe)."""
    return TIMEFRAMES[check_timeframe(timeframe)]


# The bar: MT5's MqlRates record (``copy_rates_*``) plus ``timeframe``. ``time`` is the bar's *open*,
# timezone-aware UTC; ``spread`` is in points (null where the source has none). Readers, validation,
# both offline stores and the computation all use this one schema.
BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "timeframe": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "tick_volume": pl.Int64(),
    "spread": pl.Int64(),
    "real_volume": pl.Int64(),
}
BAR_COLUMNS: tuple[str, ...] = tuple(BAR_SCHEMA)
KEY = ("symbol", "timeframe", "time")

WARMUP_MARGIN = 10.0
"""Seeds must decay to ``WARMUP_TOLERANCE / WARMUP_MARGIN``: a seed's error can be amplified on the
way to the published value (RSI divides smoothed gains by gains plus losses; when volatility drops
after the start, the ratio grows). Measured without the margin, RSI(14) on EURUSD reached 0.96 of
the tolerance in the prefix-invariance test; the margin buys an order of magnitude of headroom."""


def decay_bars(alpha: float, tol: float = WARMUP_TOLERANCE) -> int:
    """Bars after which a seed's weight ``(1 - alpha) ** n`` is at most ``tol / WARMUP_MARGIN``."""
    return math.ceil(math.log(tol / WARMUP_MARGIN) / math.log(1.0 - alpha))


def ema_alpha(n: int) -> float:
    return 2.0 / (n + 1)


def wilder_alpha(n: int) -> float:
    return 1.0 / n


@dataclass(frozen=True)
class Domain:
    """The values a feature can take: ``lo <= x <= hi``, or a finite set ``values``.

    ``None`` is an unbounded side. ``lo_open`` makes the lower bound strict (``x > lo``): prices and
    averages of prices are > 0. A non-empty ``values`` (candle patterns) replaces the interval.
    Rendered in interval notation (``str``): ``[0, 100]``, ``(0, inf)``, ``(-inf, inf)``,
    ``{-100, 0, 100}``. :func:`mt5lab.features.compute.compute_features` publishes nothing outside it.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    values: tuple[float, ...] = ()

    def __str__(self) -> str:
        if self.values:
            return "{" + ", ".join(f"{v:g}" for v in self.values) + "}"
        lo = "(-inf" if self.lo is None else ("(" if self.lo_open else "[") + f"{self.lo:g}"
        hi = "inf)" if self.hi is None else f"{self.hi:g}]"
        return f"{lo}, {hi}"


REAL = Domain()  # (-inf, inf): oscillators around 0, cumulative lines, log returns
POSITIVE = Domain(0.0, lo_open=True)  # (0, inf): prices and (weighted) averages of prices
NONNEGATIVE = Domain(0.0)  # [0, inf): volumes, ranges, dispersions
PERCENT = Domain(0.0, 100.0)  # [0, 100]: RSI, stochastics, MFI
SHARE = Domain(0.0, 1.0)  # [0, 1]: parts of the bar range


@dataclass(frozen=True)
class Feature:
    """One catalog feature.

    ``domain`` (required, :class:`Domain`) is where its published values lie, for valid bars
    (prices > 0, ``low <= open, close <= high``, volumes >= 0; :mod:`mt5lab.bars.validate`). The
    computation keeps every computed feature inside it: non-finite results and 0/0 ratios are null,
    floating round-off past a closed bound is clipped onto it. The bar columns pass through as given.
    """

    name: str
    view: str
    dtype: str  # "Float64" or "Int64"
    definition: str
    description: str
    lookback: int = 0  # TA-Lib's lookback: leading bars with no output at all
    smoothing: tuple[float, ...] = ()  # alphas of recursive smoothers chained behind the lookback
    scale: str | None = None  # "price", "percent" (0..100), "volume", "ratio" or None (exact)
    cumulative: bool = False  # obv/ad: start at the symbol's first stored bar, state carried
    domain: Domain = field(kw_only=True)  # no default: every feature states its domain

    @property
    def warmup(self) -> int:
        """Leading bars published as null (per symbol) at :data:`WARMUP_TOLERANCE`."""
        return self.lookback + sum(decay_bars(a) for a in self.smoothing)


@dataclass(frozen=True)
class View:
    name: str
    description: str
    features: tuple[Feature, ...] = field(default=())


def _f(name, view, definition, description, dtype="Float64", *, domain: Domain, **kw) -> Feature:
    return Feature(name, view, dtype, definition, description, domain=domain, **kw)


_OHLCV = "ohlcv_features"
_MA = "technical_indicators_ma"
_MOM = "technical_indicators_momentum"
_VOLA = "technical_indicators_volatility"
_VOL = "volume_indicators"
_PA = "price_action"

# Domains hold for valid bars (prices > 0, low <= open, close <= high, volumes >= 0). The less
# obvious ones: roc_10 >= -100 and co_ratio >= -1 (a positive price falls by less than 100 %);
# bb_upper_20 >= bb_middle_20 > 0, but bb_lower_20 = SMA - 2 sd can be negative (19 closes at 1
# and one at 100: 5.95 - 2 * 21.6); obv, ad, adosc, macd and log returns are signed.
_FEATURES: tuple[Feature, ...] = (
    _f("open", _OHLCV, "bar open", "Bar open price (MT5 MqlRates.open).", domain=POSITIVE),
    _f("high", _OHLCV, "bar high", "Bar high price.", domain=POSITIVE),
    _f("low", _OHLCV, "bar low", "Bar low price.", domain=POSITIVE),
    _f("close", _OHLCV, "bar close", "Bar close price.", domain=POSITIVE),
    _f("tick_volume", _OHLCV, "bar tick_volume", "Number of ticks in the bar.", "Int64",
       domain=NONNEGATIVE),
    _f("real_volume", _OHLCV, "bar real_volume", "Exchange volume; 0 for most FX brokers.", "Int64",
       domain=NONNEGATIVE),
    _f("spread", _OHLCV, "bar spread", "Spread in points; null where the source has none.", "Int64",
       domain=NONNEGATIVE),
    *(
        _f(f"sma_{n}", _MA, f"SMA(close, {n})", f"Simple moving average of close over {n} bars.",
           lookback=n - 1, scale="price", domain=POSITIVE)
        for n in (5, 10, 20, 50, 200)
    ),
    *(
        _f(f"ema_{n}", _MA, f"EMA(close, {n})",
           f"Exponential moving average of close, {n} bars (TA-Lib, SMA-seeded).",
           lookback=n - 1, smoothing=(ema_alpha(n),), scale="price", domain=POSITIVE)
        for n in (12, 26, 50)
    ),
    _f("rsi_14", _MOM, "RSI(close, 14)", "Wilder relative strength index, 14 bars (0..100).",
       lookback=14, smoothing=(wilder_alpha(14),), scale="percent", domain=PERCENT),
    _f("macd", _MOM, "MACD(close, 12, 26, 9)[0]", "MACD line: EMA12 - EMA26 of close.",
       lookback=33, smoothing=(ema_alpha(26),), scale="price", domain=REAL),
    _f("macd_signal", _MOM, "MACD(close, 12, 26, 9)[1]", "MACD signal: EMA9 of the MACD line.",
       lookback=33, smoothing=(ema_alpha(26), ema_alpha(9)), scale="price", domain=REAL),
    _f("macd_hist", _MOM, "MACD(close, 12, 26, 9)[2]", "MACD histogram: MACD - signal.",
       lookback=33, smoothing=(ema_alpha(26), ema_alpha(9)), scale="price", domain=REAL),
    _f("stoch_k", _MOM, "STOCH(h, l, c, 14, 3, SMA, 3, SMA)[0]", "Slow stochastic %K (0..100).",
       lookback=17, scale="percent", domain=PERCENT),
    _f("stoch_d", _MOM, "STOCH(h, l, c, 14, 3, SMA, 3, SMA)[1]", "Slow stochastic %D (0..100).",
       lookback=17, scale="percent", domain=PERCENT),
    _f("roc_10", _MOM, "ROC(close, 10)", "Rate of change over 10 bars, percent.",
       lookback=10, scale="percent", domain=Domain(-100.0)),
    _f("atr_14", _VOLA, "ATR(h, l, c, 14)", "Wilder average true range, 14 bars (price units).",
       lookback=14, smoothing=(wilder_alpha(14),), scale="price", domain=NONNEGATIVE),
    _f("natr_14", _VOLA, "NATR(h, l, c, 14)", "ATR(14) as percent of close.",
       lookback=14, smoothing=(wilder_alpha(14),), scale="percent", domain=NONNEGATIVE),
    _f("bb_upper_20", _VOLA, "BBANDS(close, 20, 2, 2, SMA)[0]", "Upper Bollinger band (SMA20 + 2 sd).",
       lookback=19, scale="price", domain=POSITIVE),
    _f("bb_middle_20", _VOLA, "BBANDS(close, 20, 2, 2, SMA)[1]", "Middle Bollinger band (SMA20).",
       lookback=19, scale="price", domain=POSITIVE),
    _f("bb_lower_20", _VOLA, "BBANDS(close, 20, 2, 2, SMA)[2]", "Lower Bollinger band (SMA20 - 2 sd).",
       lookback=19, scale="price", domain=REAL),
    _f("bb_width_20", _VOLA, "(bb_upper_20 - bb_lower_20) / bb_middle_20",
       "Bollinger band width relative to the middle band.", lookback=19, scale="ratio",
       domain=NONNEGATIVE),
    _f("stddev_20", _VOLA, "STDDEV(close, 20, 1)", "Population standard deviation of close, 20 bars.",
       lookback=19, scale="price", domain=NONNEGATIVE),
    _f("obv", _VOL, "OBV(close, vol)", "On-balance volume, cumulative from the first stored bar.",
       cumulative=True, scale="volume", domain=REAL),
    _f("ad", _VOL, "AD(h, l, c, vol)", "Chaikin accumulation/distribution line, cumulative from "
       "the first stored bar.", cumulative=True, scale="volume", domain=REAL),
    _f("adosc", _VOL, "ADOSC(h, l, c, vol, 3, 10)", "Chaikin oscillator: EMA3 - EMA10 of the AD line.",
       lookback=9, smoothing=(ema_alpha(10),), scale="volume", domain=REAL),
    _f("mfi_14", _VOL, "MFI(h, l, c, vol, 14)", "Money flow index, 14 bars (0..100).",
       lookback=14, scale="percent", domain=PERCENT),
    _f("volume_sma_20", _VOL, "SMA(vol, 20)", "Simple moving average of effective volume, 20 bars.",
       lookback=19, scale="volume", domain=NONNEGATIVE),
    _f("log_return_1", _PA, "ln(close / previous close)", "One-bar log return.",
       lookback=1, scale="ratio", domain=REAL),
    _f("hl_range", _PA, "(high - low) / close", "Bar range relative to close.", scale="ratio",
       domain=NONNEGATIVE),
    _f("co_ratio", _PA, "(close - open) / open", "Bar return from open to close.", scale="ratio",
       domain=Domain(-1.0)),
    _f("body_ratio", _PA, "abs(close - open) / (high - low)", "Body share of the bar range.",
       scale="ratio", domain=SHARE),
    _f("upper_shadow", _PA, "(high - max(open, close)) / (high - low)",
       "Upper shadow share of the bar range.", scale="ratio", domain=SHARE),
    _f("lower_shadow", _PA, "(min(open, close) - low) / (high - low)",
       "Lower shadow share of the bar range.", scale="ratio", domain=SHARE),
    _f("cdl_doji", _PA, "CDLDOJI(o, h, l, c)", "TA-Lib doji pattern: 100 or 0.", "Int64", lookback=10,
       domain=Domain(values=(0, 100))),
    _f("cdl_engulfing", _PA, "CDLENGULFING(o, h, l, c)", "TA-Lib engulfing pattern: -100, 0 or 100.",
       "Int64", lookback=2, domain=Domain(values=(-100, 0, 100))),
)

_VIEW_DESCRIPTIONS = {
    _OHLCV: "The bar itself (MT5 rate record).",
    _MA: "Moving averages of close.",
    _MOM: "Momentum oscillators.",
    _VOLA: "Volatility measures.",
    _VOL: "Volume indicators on effective volume (real_volume if > 0, else tick_volume).",
    _PA: "Price action ratios and candlestick patterns.",
}

VIEWS: tuple[View, ...] = tuple(
    View(name, desc, tuple(f for f in _FEATURES if f.view == name))
    for name, desc in _VIEW_DESCRIPTIONS.items()
)
FEATURES: tuple[Feature, ...] = _FEATURES
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
VIEW_NAMES: tuple[str, ...] = tuple(v.name for v in VIEWS)
MAX_WARMUP: int = max(f.warmup for f in FEATURES)
"""The largest warm-up: an incremental update recomputes from the last ``MAX_WARMUP`` bars."""


def view(name: str) -> View:
    for v in VIEWS:
        if v.name == name:
            return v
    raise KeyError(f"unknown feature view {name!r}; expected one of {', '.join(VIEW_NAMES)}")


def catalog_hash() -> str:
    """A stable hash of the catalog's content (features, warm-ups, ttl rule, tolerance)."""
    payload = {
        "version": CATALOG_VERSION,
        "tolerance": WARMUP_TOLERANCE,
        "margin": WARMUP_MARGIN,
        "closures_s": {c: d.total_seconds() for c, d in CALENDAR_CLOSURES.items()},
        "exchanges": CALENDAR_EXCHANGES,
        "features": [asdict(f) | {"warmup": f.warmup} for f in FEATURES],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def as_records() -> list[dict]:
    """The catalog as rows, for docs and notebooks (``domain`` in interval notation, see :class:`Domain`)."""
    return [
        {"view": f.view, "feature": f.name, "dtype": f.dtype, "definition": f.definition,
         "domain": str(f.domain), "warmup_bars": f.warmup, "description": f.description}
        for f in FEATURES
    ]
