"""Delivery: what each campaign step sends, the contact policy, rendering and the dispatcher
that claims due touches and sends them exactly once (in one process or several)."""
