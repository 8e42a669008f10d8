"""The one entity: ``symbol``."""

from mt5lab.repo import entity

symbol = entity()
