"""Ground truth of a simulated data root: the planted vectors and the true click propensity.

Stored beside the data (never in the raw tables), under ``Layout.truth_dir``::

    truth/world.json                         preset, seed, click-model constants, formula
    truth/users.npz                          user_id [U], latent float32 [U, d]
    truth/items/created=YYYY-MM-DD.npz       one block per creation day: item_id, latent, pop

``Truth.scores`` is what the oracle ranks by: the probability that the user clicks the item
when it is shown at the top position, ``sigmoid(a * <u, v> + b * pop + c)``. It does not
depend on the day (freshness only changes how often an item is *shown*, not how much a user
likes it when shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Truth:
    """Planted vectors of every user and item of a simulated data root."""

    meta: dict[str, Any]
    user_ids: np.ndarray  # str [U]
    user_latent: np.ndarray  # float32 [U, d]
    item_ids: np.ndarray  # str [I]
    item_latent: np.ndarray  # float32 [I, d]
    item_pop: np.ndarray  # float32 [I], standardised log-popularity

    @classmethod
    def load(cls, layout) -> Truth | None:
        """The truth under ``layout.truth_dir``, or None when the root has none (imported data)."""
        from logsim import io

        found = io.read_truth(Path(layout.truth_dir))
        return None if found is None else cls(**found)

    @cached_property
    def _user_index(self):
        import pandas as pd

        return pd.Index(self.user_ids)

    @cached_property
    def _item_index(self):
        import pandas as pd

        return pd.Index(self.item_ids)

    @staticmethod
    def _lookup(index, wanted, kind: str) -> np.ndarray:
        wanted = np.asarray(wanted).astype(str)
        idx = index.get_indexer(wanted)
        if (idx < 0).any():
            missing = wanted[idx < 0]
            raise KeyError(
                f"{len(missing):,} {kind} ids are not in the simulator's truth (e.g. {missing[:3].tolist()}); "
                "was this data root simulated with the same preset and seed?"
            )
        return idx

    def scores(self, user_ids, item_ids) -> np.ndarray:
        """True click propensity at the top position.

        Args:
            user_ids: [n_users] user id strings; item_ids: [n_items] item id strings.
        Returns:
            float32 [n_users, n_items] in (0, 1). Raises KeyError for ids the truth does not know.
        """
        ui = self._lookup(self._user_index, user_ids, "user")
        ii = self._lookup(self._item_index, item_ids, "item")
        m = self.meta["click_model"]
        logit = m["affinity_weight"] * (self.user_latent[ui] @ self.item_latent[ii].T)
        logit += m["popularity_weight"] * self.item_pop[ii][None, :] + m["click_bias"]
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

