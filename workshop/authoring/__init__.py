"""Workflow authoring: UI-format templates from the API ones with the real frontend, their layout, thumbnails and the frontend translations of the node names."""
