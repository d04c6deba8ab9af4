"""SLA policy, business calendar, deadline arithmetic and the reminder scheduler."""
