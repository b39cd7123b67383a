"""Synthetic data with exact ground truth, for training small models and measuring what they learned."""
