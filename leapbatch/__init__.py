"""leapbatch: declarative, resumable image-dataset generation on Leap's image API."""

__version__ = "0.1.0"
