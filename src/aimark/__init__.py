"""aimark: watermark, label and verify AI-generated text and code."""

__version__ = "0.1.0"
