"""Sensors of compiled flows."""
