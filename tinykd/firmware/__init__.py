"""Firmware side of tinykd: read .tflite models, generate C for our int8 runtime
(firmware/runtime), build it for the host, and make board projects (project.py)."""
