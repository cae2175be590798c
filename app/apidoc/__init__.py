"""The API documents itself: the OpenAPI document completed with descriptions, examples,
error codes and the causes of 429/503 answers."""
