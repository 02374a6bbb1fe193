"""Run the whole service on one machine over emulated AWS."""
