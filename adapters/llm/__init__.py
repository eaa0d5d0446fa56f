"""Chat models behind the ChatModel port: the OpenAI-compatible gateway and the offline model."""
