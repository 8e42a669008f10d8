"""Harnesses for tests and benchmarks, kept out of the runtime package's way.

:mod:`.sandbox` starts throwaway services on free loopback ports (a Redis server, a fresh PostgreSQL
database, ``mt5lab serve``) and stops them by PID; :mod:`.cluster` starts a whole PostgreSQL cluster
that really checks passwords (scram-sha-256), for the secret-leak tests; :mod:`.restartable` starts a
PostgreSQL cluster and a Redis server that a test crashes and restarts under a running client.

May import: nothing from mt5lab but itself. Runtime code never imports it.
"""
