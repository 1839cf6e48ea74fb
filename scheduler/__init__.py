"""A reusable Django app that registers ComfyUI backends per app and selects them by policy."""
