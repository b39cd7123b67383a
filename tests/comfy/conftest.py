"""In-process ComfyUI: ``comfy`` imported on the CPU before any test module imports it."""

from tests.harness import comfy_env

comfy_env.bootstrap()
