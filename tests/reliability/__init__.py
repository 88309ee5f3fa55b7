"""The reliability and security suite: faults, load and bad input, with nothing lost."""
