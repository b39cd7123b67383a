"""Synthetic data with exact ground truth, for training the pack's small demo models and measuring what they
learned: seeded clips of simple shapes moving along smooth paths (``shapes``) and their analyser (``analyse``);
2D articulated people with exact DensePose UV (``people``), their metrics (``people_metrics``) and autoencoder
(``people_vae``)."""
