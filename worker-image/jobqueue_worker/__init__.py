"""The worker runtime: runs user task functions against the jobqueue protocol."""
