"""Synthetic animation data the pack trains and measures its demo models with: seeded clips of simple shapes moving
along smooth paths (``shapes``), and an analyser that measures a generated clip's object per frame (``analyse``)."""
