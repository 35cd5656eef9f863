"""The run context: what one step of one run day works with, built once per step.

``RunContext.build(cfg, ds)`` parses the day, derives the window and the storage layout, and
every stage takes it instead of rebuilding them from ``(cfg, ds)``. :class:`Window` is the one
definition of the days a run reads: the ``etl.window_days`` days ending at ``ds``, whose last
``etl.eval_days`` days are held out for evaluation and the rest trained on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from contracts.days import day_range, ds_str, parse_ds
from core.config import Config
from core.errors import UserError
from storage.layout import Layout


@dataclasses.dataclass(frozen=True)
class Window:
    """The days one run works on (``YYYY-MM-DD`` strings, oldest first)."""

    ds: str
    days: tuple[str, ...]
    train_days: tuple[str, ...]
    eval_days: tuple[str, ...]

    @classmethod
    def of(cls, ds: str | dt.date, window_days: int, eval_days: int) -> Window:
        """The window of ``window_days`` days ending at ``ds``; its last ``eval_days`` are held out.
        Raises :class:`UserError` unless ``window_days > eval_days >= 1`` (a window needs a day
        to train on and a day to evaluate on)."""
        if eval_days < 1 or window_days <= eval_days:
            raise UserError(
                f"etl.window_days ({window_days}) must exceed etl.eval_days ({eval_days}) >= 1: "
                "the window needs at least one training day"
            )
        days = tuple(day_range(ds, window_days))
        return cls(ds=ds_str(ds), days=days, train_days=days[:-eval_days], eval_days=days[-eval_days:])

    @classmethod
    def for_run(cls, cfg: Config, ds: str | dt.date) -> Window:
        return cls.of(ds, cfg.etl.window_days, cfg.etl.eval_days)

    @property
    def first_eval_day(self) -> str:
        return self.eval_days[0]

    @property
    def last_train_day(self) -> str:
        return self.train_days[-1]

    def before(self, days: int) -> tuple[str, ...]:
        """The ``days`` days ending at the last training day (e.g. a popularity bar's stretch)."""
        return tuple(day_range(self.last_train_day, days))


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Config, run day, window and storage layout of one step (built once, passed down)."""

    cfg: Config
    ds: str
    window: Window
    layout: Layout

    @classmethod
    def build(cls, cfg: Config, ds: str | dt.date) -> RunContext:
        day = parse_ds(ds).isoformat()
        return cls(cfg=cfg, ds=day, window=Window.for_run(cfg, day), layout=Layout(cfg.paths))
