"""Stage 3b, online: keep the online store current and read it fast, for live trading.

:mod:`.update` is the hot path's write (new bars -> validated -> incremental features -> offline and
online in one step); :mod:`.materialize` copies the offline latest rows online (Feast's layout,
:mod:`.redis_rows` on Redis); :mod:`.tables` talks to Feast's ``OnlineStore``; :mod:`.reader` is the
fast read with ttl status (``online_features``, ``OnlineReader``); :mod:`.feast_read` reads through
Feast's ``get_online_features``; :mod:`.freshness` checks staleness against the market calendar; :mod:`.follow` is the live feed
(a source's closed bars through ``update`` at every bar close);
:mod:`.server` runs Feast's HTTP feature server with mt5lab's faster route (:mod:`.route`), which
answers itself only the requests :mod:`.http_request` proves it answers exactly as Feast would.

May import: the base modules, :mod:`mt5lab.storage`, :mod:`mt5lab.feast_repo`, :mod:`mt5lab.bars`
and :mod:`mt5lab.features`. Nothing above (not training, not research).
"""
