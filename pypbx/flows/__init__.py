"""Call flows: each drives a call after ``CallManager.hand_over`` (see :mod:`pypbx.call.flow`)."""
