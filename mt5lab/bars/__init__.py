"""Stage 1, bars in: what a bar is, how it is read, checked and stored once.

Readers for MT5 terminal exports, generic CSV and Parquet (:mod:`.formats` tells encodings, delimiters
and which column is which; :mod:`.readers` parses values in streamed batches), broker server clock to
UTC (:mod:`.clock`), frames into the canonical schema (:mod:`.schema`), the validation rules and gap
report (:mod:`.validate`), market calendars (:mod:`.calendars`), the bundled real samples
(:mod:`.samples`), and ingest: every input streamed and validated into a staging area
(:mod:`.staging`), then written once, all or nothing (:mod:`.ingest`).

May import: the base modules (:mod:`mt5lab.catalog`, :mod:`mt5lab.errors`, :mod:`mt5lab.config`,
:mod:`mt5lab.progress`) and :mod:`mt5lab.storage`. Nothing above.
"""
