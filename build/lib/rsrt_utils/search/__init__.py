"""The search tool: a vector index over caption-variant embeddings, named collections of images, and the web app."""
