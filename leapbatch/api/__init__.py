"""Leap over HTTP."""
