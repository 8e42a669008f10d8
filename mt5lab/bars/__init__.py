"""Stage 1, bars in: how a bar file is read, checked and stored once.

Readers for MT5 terminal exports, generic CSV and Parquet (:mod:`.formats` tells encodings, delimiters
and which column is which; :mod:`.readers` parses values in streamed batches), broker server clock to
UTC (:mod:`.clock`), frames into the canonical schema (:mod:`.schema`), the validation rules and gap
report (:mod:`.validate`), market calendars (:mod:`.calendars`) and their exchange holidays
(:mod:`.holidays`), the bundled real samples (:mod:`.samples`), and ingest: every input streamed and
validated into a staging area (:mod:`.staging`), then written once, all or nothing (:mod:`.ingest`).

The bar schema itself is catalog data (:data:`mt5lab.catalog.BAR_SCHEMA`), since the stores use it too.

May import: the base modules (catalog, errors, config, envsubst, progress) and :mod:`mt5lab.storage`.
Nothing above.
"""
