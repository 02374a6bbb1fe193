"""Data actions on the checkstate table: record each day's results, claim notifications."""

from __future__ import annotations

ACTIONS: dict = {}
