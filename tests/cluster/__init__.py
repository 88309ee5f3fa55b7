"""Local test infrastructure: a real control plane, a real node and real redis-servers."""
