"""The one entity: ``symbol``."""

from mt5lab.feast_repo.definitions import entity

symbol = entity()
