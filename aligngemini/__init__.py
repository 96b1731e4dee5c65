"""AlignGemini: AI-generated image detection by task-model alignment."""

__version__ = "0.1.0"
