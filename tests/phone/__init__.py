"""A pjsua2 test phone (a real SIP user agent in its own process) and its driver."""
