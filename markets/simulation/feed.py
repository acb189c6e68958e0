"""The oracle's ticks in a simulated run: one per `tick_every` steps from the run's feed (with volumes when
the session settles by a rule that reads them), and at settlement the fixing burst inside the window; each
stored in the database and on the reference model's tape (`fixing_model.Tape`)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from ledger import clock
from markets import domain
from markets.simulation import fixing_model
from oracle.models import Tick


class Feed:
    """Mixed into `Simulation` (its legs, prices, generator and tape)."""

    def _store_tick(self, *, fixing: bool = False) -> None:
        prices = self._jumped(next(self.source), fixing=fixing)
        volumes = {leg: self._volume() for leg in self.legs} if self.params.fixing != "last" else {}
        self._store_ticks([(clock.now(), f"sim:{self.params.seed}", prices, volumes)])
        self.prices = {leg: prices[leg] for leg in self.legs}
        self.result.ticks_stored += 1

    def _store_ticks(self, rows: list[tuple[dt.datetime, str, dict[str, int], dict[str, int | None]]]) -> None:
        """Ticks (instant, source, prices and volumes by leg) in one transaction, and on the model's tape."""
        ticks = []
        for at, source, prices, volumes in rows:
            for leg in self.legs:
                volume = volumes.get(leg)
                ticks.append(
                    Tick(session_id=self.sid, symbol=leg, at=at, price=prices[leg], volume=volume, source=source)
                )
                self.tape.append(fixing_model.Tape(len(self.tape), leg, at, prices[leg], volume, source))
        with transaction.atomic():
            Tick.objects.bulk_create(ticks)

    def _volume(self) -> int | None:
        """A tick's volume in 10**-6 units: 1 to 20 units, or none one time in five."""
        return None if self.rng.random() < 0.2 else int(self.rng.integers(1, 21)) * domain.QTY_SCALE

    def _fixing_burst(self) -> None:
        """Ticks inside the fixing window, the last at the fixing instant: one to five instants, from the
        run's feed or (composite) three feeds within 2% of each other, the third sometimes 50% off; some
        ticks without volume, and for a ladder sometimes none at all, so that its VWAP tier fails."""
        end = clock.now()
        walk = self._jumped(next(self.source), fixing=True)
        composite = self.params.fixing == "composite"
        sources = fixing_model.SOURCES if composite else (f"sim:{self.params.seed}",)
        far = composite and self.rng.random() < 0.5
        dry = self.params.fixing == "fallback" and self.rng.random() < 0.4
        rows = []
        for k in range(int(self.rng.integers(1, 6))):
            at = end - dt.timedelta(seconds=int(self.rng.integers(1, fixing_model.WINDOW))) if k else end
            for source in sources:
                off = (3, 2) if far and source == sources[-1] else (1000 + int(self.rng.integers(-20, 21)), 1000)
                prices = {leg: max(1, walk[leg] * off[0] // off[1]) for leg in self.legs}
                volumes = {leg: None if dry else self._volume() for leg in self.legs}
                rows.append((at, source, prices, volumes))
        self._store_ticks(rows)
        self.result.ticks_stored += len(rows)
