"""The providers' edges: sending through each channel, and parsing and verifying what
their webhooks send back. Imports only leadops.models and leadops.core."""
