"""Nurture: segmenting leads, planning their campaigns, and the tick that plans and then
sends what is due (through leadops.delivery)."""
