"""fastnn.models: the lessons' models."""
