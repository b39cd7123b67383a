"""The image and camera add-on models that ride on an inflated MODEL: PIA, AnimateLCM-I2V, SparseCtrl and CameraCtrl, each as a file reader/torch module plus its ModelPatcher glue."""
