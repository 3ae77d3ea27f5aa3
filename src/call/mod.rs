//! Calls end to end: the per-call real-time pipeline joining SIP/RTP, speech and dialogue.
