"""Shared by the tests, the demo job and the benchmarks: where things live, the in-process ``comfy`` bootstrap,
and a driver for the real ComfyUI server."""
