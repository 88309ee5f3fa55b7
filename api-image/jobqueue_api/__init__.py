"""The HTTP job API: accepts jobs into Redis through the jobqueue protocol."""
