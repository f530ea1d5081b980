"""Seeing the dataset: a catalog of its jobs (pure), the static gallery that pivots any axis, contact sheets.

`catalog` turns the manifest's jobs and the ledger state into what a person looks at; `absence` says why a cell
is empty; `gallery_data` writes the catalog as the gallery's data script; `thumbs` makes WebP thumbnails named by
content; `gallery` writes the page folder; `sheet` draws a labelled contact sheet with Pillow. Nothing here sends
a request or changes the output folder's own files.
"""
