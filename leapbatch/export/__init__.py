"""What leaves the folder for people and trainers: dataset exports (and, later, the gallery and contact sheets).

An export is a pure function of the folder's ledger, its images and the dataset's manifest: it sends nothing and
spends nothing, and the same folder exported twice gives the same bytes. The pipeline of `leapbatch export`:

    ledger state + dataset jobs --images--> ExportImage[] --split--> {split: [ExportImage]}
        --a format (imagefolder, kohya, webdataset, parquet)--> files in a Staging folder
        --card--> README.md --Staging.commit--> SHA256SUMS, then the folder swapped in at DEST

`images` reads each original once, checks it against the ledger and tags its PNG copy (`pngtext`); a format
module only lays the images out; `staging` alone touches DEST, so no reader ever sees half an export.
"""
