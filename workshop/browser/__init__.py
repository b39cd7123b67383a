"""Driving the real ComfyUI frontend in headless Chromium (Playwright), for the browser tier and workflow authoring."""
