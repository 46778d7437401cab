"""glassd model factory: trains, tunes, exports and checks the daemon's ONNX models on the digital twin's data.

``python -m glass_factory build [--quick]`` — see models/factory/README.md.
"""

__version__ = "1.0.0"
