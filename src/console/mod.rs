//! Operator console: live call view, listen-in over WebRTC, take-over and call history.
