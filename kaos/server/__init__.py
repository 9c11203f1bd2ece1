"""The kaos server: a FastAPI app over the pipeline and the store."""
