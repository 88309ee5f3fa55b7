"""The demo: the whole system working, visibly, on one machine (`make demo`, `make kind-demo`)."""
