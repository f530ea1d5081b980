"""Jobs -> records + images."""
