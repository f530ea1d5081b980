"""leapbatch: declarative, resumable image-dataset generation on Leap's image API."""

# The layout is the pipeline; each room translates one vocabulary into the next, and imports only from the rooms
# above it (tests/architecture keeps this true):
#
#   manifest.yaml --manifest/--> Job[] --run/--> ledger records + images --folder/--> results, metadata, status
#                                           |                                  |
#                                          api/ (Leap over HTTP)            export/ --> datasets for trainers
#                                                                             view/   --> gallery page, contact sheets
#
#   errors, wire, jobs, events, crashpoints, pricing   leaves: no network, disk or clock; everything may import them
#   manifest/   YAML file -> checked Manifest -> jobs, plan summaries (the only yaml importer)
#   api/        Leap over HTTP: client, retry, backoff, rate limits, streamed downloads (httpx lives here)
#   folder/     the output folder's on-disk contract: ledger, records + fold, checkpoint, keys, images, atomic files,
#               results, status, verify, shards held, merge of shard folders (no network)
#   run/        jobs -> records + images: runner, submit, poller and its learned pace, resume, budget, delete, repair
#               (never sees a manifest)
#   export/     folder -> datasets trainers load: imagefolder, kohya, webdataset, parquet, with a card and
#               SHA256SUMS (sends nothing)
#   view/       folder -> what a person looks at: a catalog of jobs and why cells are empty, the static gallery
#               (page, content-named thumbnails, data script), contact sheets (sends nothing)
#   cli/        argv, printing, exit codes, progress display: the only place that prints or exits
#   emulator/   the local Leap API (imports only wire and errors; only cli imports it)
#
# The stack: leaves < manifest, api, folder < run, export, view < cli.

__version__ = "0.1.0"
