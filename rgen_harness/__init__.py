"""rgen-harness: QR / QCR response-generation studies on lm-evaluation-harness.

Kept import-free on purpose: the start-up hook imports this package in every interpreter.
"""

__version__ = "0.1.0"
