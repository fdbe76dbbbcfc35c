"""Firmware side of tinykd: read .tflite models (tflite_model.py), generate C for our int8
runtime (codegen/: .tflite -> ModelSources), build it for the host (host_build.py), make board
projects around a ModelSources (project.py, with an optional device frontend: frontends.py),
compile them and check the fit (toolchain.py); build.py chains the three for one board."""
