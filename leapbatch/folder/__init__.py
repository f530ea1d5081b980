"""The output folder's on-disk contract."""
